"""Loading a study: read the YAML safely, apply `--set` overrides, validate the schema, then
check the search space, the objective and the strategy against the study. Nothing here reads
the data: checks that need it are the run layer's pre-flight (`harness.run.preflight`)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import SpecError
from harness.objectives import objective_problems
from harness.search import SEARCHERS, resolve_strategy, strategy_problems
from harness.search.space import DISCRETE
from harness.study.dotted import lookup, set_path, siblings
from harness.study.messages import format_errors
from harness.study.reading import read_yaml_mapping
from harness.study.schema import UNSEARCHABLE, StudySpec


def check_search_space(spec: StudySpec) -> None:
    """Every search path names a field, and every value it can take is valid there."""
    raw = spec.to_dict()
    raw["search"]["space"] = {}
    problems = []
    searcher, _ = resolve_strategy(spec)
    for path, dist in spec.search.space.items():
        where = f"search.space.{path}"
        if path.split(".")[0] in UNSEARCHABLE:
            problems.append(f"{where}: cannot be searched; searchable sections: data, model, train, seed, objective")
            continue
        if not lookup(raw, path):
            problems.append(f"{where}: names no field of the study; {siblings(raw, path)}")
            continue
        if SEARCHERS.get(searcher).grid and not isinstance(dist, DISCRETE):
            problems.append(
                f"{where}: the grid searcher needs a finite set of values (choice or grid), "
                f"given {next(iter(type(dist).model_fields))}"
            )
        for value in dist.probe_values():
            probe = copy.deepcopy(raw)
            set_path(probe, path, value)
            try:
                StudySpec.model_validate(probe)
            except ValidationError as exc:
                problems.append(f"{where}: value {value!r} is not allowed: {format_errors(exc)}")
                break
    problems.extend(objective_problems(spec))
    problems.extend(strategy_problems(spec))
    if problems:
        raise SpecError("\n".join(problems))


def load_spec(
    path: str | Path, overrides: dict[str, Any] | None = None, notes: list[str] | None = None
) -> StudySpec:
    """Read, override and validate a study file; raise SpecError on any problem. `notes`, if
    given, collects what the overrides did beyond setting values (a searched field pinned)."""
    path = Path(path)
    raw = read_yaml_mapping(path, "study file")
    return spec_from_dict(raw, overrides, source=str(path), notes=notes)


def pin(raw: dict[str, Any], path: str) -> list[str]:
    """Take the searched fields that an override of `path` sets (the path itself, or a field
    under it) out of the search space: a value set on the command line is used, never ignored
    in favour of sampled ones. Returns the paths taken out."""
    space = raw.get("search", {}).get("space") if isinstance(raw.get("search"), dict) else None
    if path.startswith("search.") or not isinstance(space, dict):
        return []
    taken = [key for key in space if key == path or key.startswith(path + ".")]
    for key in taken:
        del space[key]
    return taken


def spec_from_dict(
    raw: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    source: str = "spec",
    notes: list[str] | None = None,
) -> StudySpec:
    """Validate a study mapping with dotted-path `overrides` applied; an override of a searched
    field pins it (see `pin`), which `notes` records."""
    raw = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        for taken in pin(raw, key):
            if notes is not None:
                notes.append(f"{key}: set to {value!r}, so {taken} is no longer searched")
        set_path(raw, key, value)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid study\n{format_errors(exc)}") from None
    check_search_space(spec)
    return spec
