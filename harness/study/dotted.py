"""Dotted paths into a study's raw mapping (`model.hidden`, `data.preprocessing.0.window`):
setting a value (a trial's sampled configuration, `--set`), looking one up, and naming the
keys that exist when a path names none."""

from __future__ import annotations

from typing import Any

import yaml

from harness.errors import SpecError
from harness.objectives import OBJECTIVES
from lightning_modules.compression import COMPRESSION_STEPS
from lightning_modules.data import DATASETS, PREPROCESSORS, SPLITS
from lightning_modules.data.datasets import dataset_mapping
from lightning_modules.models import MODELS

# Sections that are a union tagged by one key, each choosing a registry entry's config.
TAGGED_SECTIONS = {
    "model": (MODELS, "kind"),
    "objective": (OBJECTIVES, "name"),
    "dataset": (DATASETS, "name"),
    "split": (SPLITS, "kind"),
}
# Sections that are a list of such unions (`data.preprocessing.2.window` addresses an item's key).
TAGGED_LISTS = {"preprocessing": (PREPROCESSORS, "name"), "steps": (COMPRESSION_STEPS, "kind")}


def item_at(node: Any, part: str) -> tuple[bool, Any]:
    """(found, value) of key `part` in a mapping, or of index `part` in a list."""
    if isinstance(node, dict):
        return part in node, node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return True, node[int(part)]
    return False, None


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at a dotted path; a number addresses a list item (`data.preprocessing.0.window`)."""
    parts = path.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if part == "space" and i == 1 and parts[0] == "search":
            # Space keys are dotted paths themselves: the rest of the path is one key.
            node.setdefault("space", {})[".".join(parts[2:])] = value
            return
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            found, child = item_at(node, part)
            if not found:
                raise SpecError(f"{where}: no such item; {'.'.join(parts[:i])} has {len(node)} (from 0)")
        else:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
        if isinstance(child, str) and isinstance(node, list) and parts[i - 1] in TAGGED_LISTS:
            child = node[int(part)] = {TAGGED_LISTS[parts[i - 1]][1]: child}  # a bare step name
        elif isinstance(child, str) and isinstance(node, dict) and part in TAGGED_SECTIONS:
            # A bare name (`split: kfold`, `dataset: ucr:GunPoint`) whose keys are being set.
            tag = TAGGED_SECTIONS[part][1]
            child = node[part] = dataset_mapping(child) if part == "dataset" else {tag: child}
        if not isinstance(child, (dict, list)):
            raise SpecError(f"{where}: is a {type(child).__name__}, not a mapping; cannot set {path}")
        node = child
    if isinstance(node, list):
        if not item_at(node, parts[-1])[0]:
            raise SpecError(f"{path}: no such item; {'.'.join(parts[:-1])} has {len(node)} (from 0)")
        node[int(parts[-1])] = value
        return
    node[parts[-1]] = value
    if len(parts) > 1 and parts[-2] in TAGGED_SECTIONS and parts[-1] == TAGGED_SECTIONS[parts[-2]][1]:
        _keep_fields_of(node, TAGGED_SECTIONS[parts[-2]][0], value)
    if len(parts) > 2 and parts[-3] in TAGGED_LISTS and parts[-1] == TAGGED_LISTS[parts[-3]][1]:
        _keep_fields_of(node, TAGGED_LISTS[parts[-3]][0], value)


def _keep_fields_of(node: dict[str, Any], registry: Any, name: Any) -> None:
    """After a tag changes (`model.kind: lstm` -> `transformer`), drop the keys the new entry's
    config lacks, so that searching `model.kind` keeps the shared settings and defaults the rest."""
    if isinstance(name, str) and name in registry:
        fields = registry.get(name).config.model_fields
        for key in [key for key in node if key not in fields]:
            del node[key]


def lookup(raw: dict[str, Any], path: str) -> bool:
    node: Any = raw
    for part in path.split("."):
        found, node = item_at(node, part)
        if not found:
            return False
    return True


def siblings(raw: dict[str, Any], path: str) -> str:
    parts = path.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        found, child = item_at(node, part)
        if not found:
            parent = ".".join(parts[:depth]) or "the study"
            if isinstance(node, list):
                return f"{parent} has {len(node)} items, numbered from 0"
            keys = ", ".join(sorted(node)) if isinstance(node, dict) else "none (not a mapping)"
            return f"fields under {parent}: {keys}"
        node = child
    return ""


def parse_override(text: str) -> tuple[str, Any]:
    """`key.path=value` with the value read as YAML (`5` is an int, `[64, 32]` a list)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {text!r}: expected key.path=value")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise SpecError(f"--set {key}: value {value!r} is not valid YAML: {exc}") from None


