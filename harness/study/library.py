"""The shipped studies: one YAML file per concept, listed by `harness studies`."""

from __future__ import annotations

from pathlib import Path

import yaml

STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"


def shipped_studies(folder: Path = STUDIES_DIR) -> list[tuple[Path, str, str]]:
    """(path, name, description) of every study file in `folder`."""
    found = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            raw = {}
        found.append((path, str(raw.get("name", path.stem)), str(raw.get("description", ""))))
    return found
