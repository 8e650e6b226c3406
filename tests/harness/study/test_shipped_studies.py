"""Every file in studies/ loads and validates as it ships, data checks included, and its header
gives the command that runs it: a shipped study can never rot. Shipped studies are found by
name from any folder and copied out for editing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.compare import is_comparison_file, load_comparison
from harness.errors import SpecError
from harness.run.plan import StudyPlan
from harness.run.preflight import load_study
from harness.study.library import STUDIES_DIR, copy_study, resolve_study_file, shipped_studies

FILES = sorted(STUDIES_DIR.glob("*.yaml"))
ROOT = Path(__file__).resolve().parents[3]


def test_the_library_lists_every_file_and_the_repository_links_to_it():
    assert [study.path for study in shipped_studies()] == FILES and len(FILES) >= 10
    assert (ROOT / "studies").resolve() == STUDIES_DIR


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_shipped_file_validates_and_names_its_command(path: Path):
    first = path.read_text().splitlines()[0]
    if is_comparison_file(path):
        comparison = load_comparison(path)
        assert first == f"# harness compare studies/{path.name}"
        assert comparison.strategies and comparison.seed_list()
    else:
        spec = load_study(path)
        command = "compress" if spec.compress is not None else "run"
        assert first == f"# harness {command} studies/{path.name}"
        plan = StudyPlan.of(spec)
        assert plan.expected_trials >= 1 and plan.max_epochs >= 1


def test_a_shipped_study_is_found_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_study_file("quickstart") == STUDIES_DIR / "quickstart.yaml"
    assert resolve_study_file("quickstart.yaml") == STUDIES_DIR / "quickstart.yaml"
    (tmp_path / "quickstart.yaml").write_text("name: mine\n")
    assert resolve_study_file("quickstart.yaml") == Path("quickstart.yaml")  # a file here wins
    with pytest.raises(SpecError, match="no shipped study of that name; shipped: .*quickstart"):
        resolve_study_file("no_such_study")


def test_copy_writes_the_study_and_a_comparison_brings_its_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["studies", "copy", "quickstart", str(tmp_path)]) == 0
    assert (tmp_path / "quickstart.yaml").read_text() == (STUDIES_DIR / "quickstart.yaml").read_text()
    assert main(["studies", "copy", "quickstart", str(tmp_path)]) == 2  # no silent overwrite
    assert "already exists; pass --force" in capsys.readouterr().err
    written = copy_study("compare_strategies", tmp_path / "cmp")
    base = yaml.safe_load(written[0].read_text())["study"]
    assert (tmp_path / "cmp" / base).is_file()
    assert load_comparison(written[0]).name  # the copy validates where it was written


def test_studies_lists_each_with_its_command(capsys: pytest.CaptureFixture[str]):
    assert main(["studies"]) == 0
    out = capsys.readouterr().out
    assert "harness run quickstart " in out and "harness compare compare_strategies " in out


def test_harness_finds_a_shipped_study_by_name_outside_the_checkout(tmp_path: Path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "validate", "quickstart", "--num-trials", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "valid study 'quickstart'" in out.stdout and "2 training trials" in out.stdout
