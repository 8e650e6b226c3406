"""Every file in studies/ loads and validates as it ships, data checks included, and its header
gives the command that runs it: a shipped study can never rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.compare import is_comparison_file, load_comparison
from harness.run.plan import StudyPlan
from harness.run.preflight import load_study
from harness.study.library import STUDIES_DIR, shipped_studies

FILES = sorted(STUDIES_DIR.glob("*.yaml"))


def test_the_library_lists_every_file():
    assert [path for path, _, _ in shipped_studies()] == FILES and len(FILES) >= 10


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_shipped_file_validates_and_names_its_command(path: Path):
    first = path.read_text().splitlines()[0]
    if is_comparison_file(path):
        comparison = load_comparison(path)
        assert first == f"# harness compare studies/{path.name}"
        assert comparison.strategies and comparison.seed_list()
    else:
        spec = load_study(path)
        assert first == f"# harness run studies/{path.name}"
        plan = StudyPlan.of(spec)
        assert plan.expected_trials >= 1 and plan.max_epochs >= 1
