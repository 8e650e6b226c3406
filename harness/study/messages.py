"""Validation errors as the user reads them: the field's dotted path, what was given and what
is allowed, with pydantic's union tags taken out of the path."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import FieldPathError
from harness.study.dotted import TAGGED_LISTS, TAGGED_SECTIONS
from harness.study.schema import StudySpec


def _config_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class a validation-error location points into (for listing allowed keys)."""
    cls: Any = StudySpec
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        if part in TAGGED_SECTIONS:
            registry, _ = TAGGED_SECTIONS[part]
            if parts and parts[0] in registry:
                cls = registry.get(parts.pop(0)).config
                continue
            return None
        if part in TAGGED_LISTS:
            registry, _ = TAGGED_LISTS[part]
            if len(parts) > 1 and isinstance(parts[0], int) and parts[1] in registry:
                cls = registry.get(parts[1]).config
                del parts[:2]
                continue
            return None
        annotation = cls.model_fields[part].annotation
        cls = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return cls


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tags pydantic puts in locations (`model.mlp.hidden` -> `model.hidden`; a
    distribution's tag before its own field: `lr.loguniform.loguniform` -> `lr.loguniform`)."""
    out = []
    for i, part in enumerate(loc):
        if i > 0 and isinstance(part, str) and part == loc[i - 1]:
            continue
        if i > 0 and loc[i - 1] in TAGGED_SECTIONS and part in TAGGED_SECTIONS[loc[i - 1]][0]:
            continue
        if i > 1 and loc[i - 2] in TAGGED_LISTS and isinstance(loc[i - 1], int) and part in TAGGED_LISTS[loc[i - 2]][0]:
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def format_errors(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        loc = _strip_tags(err["loc"])
        path = prefix + ".".join(str(p) for p in loc) if loc else (prefix.rstrip(".") or "spec")
        given = err.get("input")
        blamed = err.get("ctx", {}).get("error")
        if isinstance(blamed, FieldPathError):
            lines.append(f"{prefix}{blamed.path}: {blamed} (given {short(blamed.given)})")
        elif err["type"] == "extra_forbidden":
            cls = _config_at(err["loc"][:-1])
            allowed = ", ".join(sorted(cls.model_fields)) if cls else "see the docs"
            lines.append(f"{path}: unknown key (given {given!r}); allowed keys: {allowed}")
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found") and loc and _tagged_at(loc):
            registry, tag = _tagged_at(loc)  # type: ignore[misc]
            given_tag = err.get("ctx", {}).get("tag")
            problem = f"unknown {registry.kind} {given_tag!r}" if err["type"] == "union_tag_invalid" else "missing"
            lines.append(f"{path}.{tag}: {problem}; known: {', '.join(registry.names())}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg} (given {short(given)})")
    return "\n".join(lines)


def _tagged_at(loc: tuple[Any, ...]) -> tuple[Any, str] | None:
    """(registry, tag key) when `loc` points at a tagged section or an item of a tagged list."""
    if loc[-1] in TAGGED_SECTIONS:
        return TAGGED_SECTIONS[loc[-1]]
    if len(loc) > 1 and isinstance(loc[-1], int) and loc[-2] in TAGGED_LISTS:
        return TAGGED_LISTS[loc[-2]]
    return None


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
