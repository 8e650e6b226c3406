"""`harness claims --quick` on two claims end to end: every arm runs as a study execution nested
under its claim's run, the verdicts are recorded, the table is written, and `--resume` on a
finished folder runs nothing again."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, MLflow, the CLI

NAMES = ["l1_makes_exact_zeros", "clipping_prevents_explosion"]


def test_quick_claims_run_track_and_tabulate(harness_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "claims.md"
    result = run_cli("claims", *NAMES, "--quick", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in NAMES:
        assert f"{name}: seed 0, treatment:" in result.stdout and f"{name}: seed 0, baseline:" in result.stdout
    assert "too few seeds to say (1 < 5)" in result.stdout  # one seed decides nothing
    table = out.read_text()
    assert "Quick run" in table and all(f"`{name}`" in table for name in NAMES)

    client = MlflowClient(f"sqlite:///{harness_home / 'mlflow.db'}")
    for name in NAMES:
        experiment = client.get_experiment_by_name(f"claim.{name}")
        runs = client.search_runs([experiment.experiment_id])
        claim = next(r for r in runs if r.data.tags.get("harness.kind") == "claim")
        assert claim.info.status == "FINISHED" and claim.data.tags["verdict"] == "inconclusive"
        assert claim.data.params["study"] and "effect" in claim.data.metrics
        arms = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == claim.info.run_id]
        assert sorted(r.data.tags["arm"] for r in arms) == ["baseline", "treatment"]
        assert all(r.info.status == "FINISHED" for r in arms)
    # L1's proximal step makes exact zeros; L2's shrinking does not.
    assert "l1_makes_exact_zeros: seed 0, treatment: weights/zero_frac = 0.0 " not in result.stdout
    # The unclipped RNN at LR 0.1 diverges: its arm is recorded as failed, the worst outcome.
    assert "clipping_prevents_explosion: seed 0, baseline: val/loss = failed" in result.stdout

    folder = next((harness_home / "claims").glob("claims-quick-*"))
    again = run_cli("claims", *NAMES, "--quick", "--resume", str(folder))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert ": seed 0, treatment:" not in again.stdout  # nothing measured twice
    assert (folder / "claims.md").is_file()

    # Another run takes the executions the first one made instead of running them again.
    reused = run_cli("claims", NAMES[0], "--quick", "--reuse", str(folder))
    assert reused.returncode == 0, reused.stdout[-3000:] + reused.stderr[-3000:]
    assert f"{NAMES[0]}: seed 0, treatment: weights/zero_frac =" in reused.stdout and "(reused)" in reused.stdout
    experiment = client.get_experiment_by_name(f"claim.{NAMES[0]}")
    executions = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'study'")
    assert len(executions) == 2  # the two arms of the first run, no more
