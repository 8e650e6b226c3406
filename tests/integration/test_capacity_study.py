"""A bias-variance capacity study through the CLI: every trial's decomposition is logged and
adds up, the parent records the true sweet spot beside the validation choice, and the study's
dashboard draws the curve."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, MLflow, the CLI


def test_capacity_study_records_both_sweet_spots(harness_home: Path, tmp_path: Path) -> None:
    study = tmp_path / "capacity.yaml"
    study.write_text(yaml.safe_dump({
        "name": "capacity-e2e",
        "data": {"dataset": {"name": "poly", "num_samples": 40, "noise": 0.3}, "split": {"kind": "random", "val": 0.25, "test": 0.25},
                 "preprocessing": []},
        "model": {"kind": "polynomial", "degree": 1, "basis": "legendre"},
        "train": {"max_epochs": 15, "batch_size": "full", "optimizer": {"name": "adam", "lr": 0.2}},
        "bias_variance": {"training_sets": 4, "points": 21},
        "search": {"strategy": "grid", "metric": "val/loss", "mode": "min", "space": {"model.degree": {"grid": [0, 3, 9]}}},
    }))
    result = run_cli("run", str(study), "--quiet")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "true sweet spot (lowest bv/expected_error)" in result.stdout and "validation's choice" in result.stdout
    client = MlflowClient(f"sqlite:///{harness_home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("capacity-e2e")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    for trial in trials:
        m = trial.data.metrics
        assert m["bv/expected_error"] == pytest.approx(m["bv/bias2"] + m["bv/variance"] + m["bv/noise"], rel=1e-6)
        assert len(client.get_metric_history(trial.info.run_id, "bv/variance")) == 15  # every epoch
    by_error = min(trials, key=lambda r: r.data.metrics["bv/expected_error"])
    assert parent.data.tags["bias_variance.true_best_trial_id"] == by_error.data.tags["trial_id"]
    assert parent.data.metrics["bv/true_best/expected_error"] == pytest.approx(by_error.data.metrics["bv/expected_error"])
    assert "bv/chosen/expected_error" in parent.data.metrics and "test/loss_std" in parent.data.metrics
    page = next(harness_home.rglob("capacity-e2e-*/dashboard.html")).read_text()
    assert "Error against capacity" in page and "true sweet spot: model.degree" in page
