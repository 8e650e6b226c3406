"""The study spec: schema, dotted paths, error messages, loading, and the shipped studies."""

from harness.study.dotted import parse_override
from harness.study.loading import check_search_space, load_spec, spec_from_dict
from harness.study.messages import format_errors
from harness.study.schema import StudySpec

__all__ = ["StudySpec", "check_search_space", "format_errors", "load_spec", "parse_override", "spec_from_dict"]
