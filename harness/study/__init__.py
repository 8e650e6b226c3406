"""The study spec: schema, dotted paths, error messages, loading, and the shipped studies.

The names below load on first use (PEP 562): reading a file (`harness.study.reading`) or the
list of shipped studies must not import the schema, which imports every registry and torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.study.dotted import parse_override
    from harness.study.loading import check_search_space, load_spec, spec_from_dict
    from harness.study.messages import format_errors
    from harness.study.schema import StudySpec

_WHERE = {
    "StudySpec": "harness.study.schema",
    "check_search_space": "harness.study.loading",
    "format_errors": "harness.study.messages",
    "load_spec": "harness.study.loading",
    "parse_override": "harness.study.dotted",
    "spec_from_dict": "harness.study.loading",
}

__all__ = ["StudySpec", "check_search_space", "format_errors", "load_spec", "parse_override", "spec_from_dict"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'harness.study' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
