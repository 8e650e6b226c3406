"""Early stopping and the training evidence through a real study: local Ray, a real MLflow
server, the CLI. A trial that stops itself is FINISHED with an `early_stopping` stop reason,
and its child run carries the per-epoch evidence and the final weight histogram."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli, write_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, a real MLflow server, the CLI

STUDY = {
    "name": "early-stopping-study",
    "model": {"kind": "mlp", "hidden": [8]},
    # No epoch can improve val/loss by more than 10, so patience 1 ends the trial after epoch 2.
    "train": {
        "max_epochs": 10,
        "batch_size": 256,
        "optimizer": {"name": "sgd", "lr": 0.1},
        "regularization": {"l1": 0.02},
        "early_stopping": {"patience": 1, "min_delta": 10.0},
    },
    "search": {"strategy": "random", "num_trials": 1, "space": {}},
}


def test_early_stopped_trials_record_reason_evidence_and_histogram(tmp_path: Path, mlflow_server: str):
    study = write_study(tmp_path, STUDY)
    done = run_cli(
        "run", str(study), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray"), "--quiet",
        env={"HARNESS_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("early-stopping-study")
    [run] = client.search_runs([experiment.experiment_id], "tags.`harness.kind` = 'trial'")
    tags, metrics = run.data.tags, run.data.metrics
    assert run.info.status == "FINISHED" and tags["status"] == "FINISHED"
    assert tags["stop_reason"].startswith("early_stopping: val/loss did not improve"), tags["stop_reason"]
    assert metrics["epoch"] == 2
    assert {"weights/mean_abs", "weights/zero_frac", "grad_norm/1.weight", "grad_norm/total", "lr"} <= set(metrics)
    assert metrics["weights/zero_frac"] > 0  # the L1 proximal step made exact zeros
    assert len(client.get_metric_history(run.info.run_id, "grad_norm/1.weight")) == 2
    assert {"weights_histogram.json", "weights_histogram.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    local = client.download_artifacts(run.info.run_id, "weights_histogram.json", str(tmp_path))
    histogram = json.loads(Path(local).read_text())
    assert len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert sum(histogram["counts"]) == 64 * 8 + 8 * 10  # every weight of the 64-8-10 MLP
