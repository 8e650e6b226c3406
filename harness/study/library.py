"""The shipped studies: one YAML file per concept, packaged with the harness (the repository's
`studies/` is a link to this folder), listed by `harness studies`, found by name from any
directory (`harness run quickstart`) and copied out for editing (`harness studies copy`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.errors import SpecError

STUDIES_DIR = Path(__file__).resolve().parent / "shipped"


@dataclass(frozen=True)
class ShippedStudy:
    path: Path
    name: str  # the file's stem: what `harness run NAME` takes
    kind: str  # study or comparison
    summary: str  # the first line of the header that follows the command

    @property
    def command(self) -> str:
        return f"harness {'compare' if self.kind == 'comparison' else 'run'} {self.name}"


def _summary(text: str) -> str:
    lines = [line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")]
    return lines[1] if len(lines) > 1 else ""


def shipped_studies(folder: Path = STUDIES_DIR) -> list[ShippedStudy]:
    """Every study and comparison file in `folder`, by name."""
    found = []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text()
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raw = {}
        kind = "comparison" if isinstance(raw, dict) and "strategies" in raw else "study"
        found.append(ShippedStudy(path, path.stem, kind, _summary(text)))
    return found


def resolve_study_file(given: str | Path) -> Path:
    """`given` as a path when such a file exists, else the shipped study of that name
    (`quickstart` or `quickstart.yaml`); SpecError listing the shipped names otherwise."""
    path = Path(given)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml")
    if path.parent == Path(".") and (STUDIES_DIR / f"{name}.yaml").is_file():
        return STUDIES_DIR / f"{name}.yaml"
    known = ", ".join(study.name for study in shipped_studies())
    raise SpecError(f"{given}: no such study file, and no shipped study of that name; shipped: {known}")


def copy_study(name: str, destination: Path, force: bool = False) -> list[Path]:
    """Copy shipped study `name` into folder `destination` for editing; a comparison brings the
    base study file it names. Returns the files written; refuses to overwrite unless `force`."""
    source = resolve_study_file(name)
    if source.parent != STUDIES_DIR:
        raise SpecError(f"{name}: not a shipped study; `harness studies` lists them")
    files = [source]
    raw = yaml.safe_load(source.read_text()) or {}
    if isinstance(raw, dict) and isinstance(raw.get("study"), str):
        files.append(STUDIES_DIR / raw["study"])
    destination.mkdir(parents=True, exist_ok=True)
    targets = [destination / file.name for file in files]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise SpecError(f"{', '.join(existing)}: already exists; pass --force to overwrite")
    for file, target in zip(files, targets):
        shutil.copyfile(file, target)
    return targets
