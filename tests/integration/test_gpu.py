"""A study on a CUDA GPU: Ray packs fractional-GPU trials onto it and each trial trains there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli, write_study

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

HALF_GPU = {
    "name": "gpu-study",
    "search": {
        "strategy": "random",
        "num_trials": 4,
        "metric": "val/loss",
        "mode": "min",
        "space": {"train.optimizer.lr": {"loguniform": [0.001, 0.05]}, "model.hidden": {"choice": [[8], [16]]}},
    },
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0.5},
}


def test_fractional_gpu_trials_train_on_cuda(harness_home: Path, tmp_path: Path):
    study = write_study(tmp_path, HALF_GPU)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("run", str(study), "--tracking-uri", uri, "--storage", str(tmp_path / "ray"), "--quiet")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("gpu-study")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'study'")
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 4
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags.get("stop_reason")
        assert run.data.tags.get("device", "").startswith("cuda"), run.data.tags
