"""k-fold trials: the objective is the mean of the fold models' scores; a study through the CLI logs
mean, std, per-fold and per-regime metrics and reports the sealed test split per regime."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from harness.study import spec_from_dict
from harness.trial.build import build
from harness.trial.kfold import FOLD_FILE, fit_folds
from harness.trial.ray_adapter import CHECKPOINT_FILE
from tests.conftest import run_cli, write_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, a real MLflow server, the CLI

MOTOR = {"name": "motor", "num_samples": 150, "length": 32}
KFOLD = {"dataset": MOTOR, "split": {"kind": "kfold", "folds": 3, "test": 0.2}, "preprocessing": ["standardize"]}


def test_kfold_objective_is_the_mean_of_the_fold_scores():
    spec = spec_from_dict(
        {"name": "k", "data": KFOLD, "model": {"kind": "mlp", "hidden": [8]}, "train": {"max_epochs": 2, "batch_size": 16}}
    )
    rows: list[dict] = []
    folder = Path(tempfile.mkdtemp())

    def sink(metrics: dict, checkpoints) -> None:
        rows.append(metrics)
        checkpoints.save_checkpoint(folder / CHECKPOINT_FILE)

    fit_folds(spec, sink)
    assert [r["epoch"] for r in rows] == [1, 2]
    # Score each fold's saved model on its own validation part, independently of the trial.
    scores = []
    for fold in range(3):
        dm, module = build(spec, fold=fold)
        state = torch.load(folder / FOLD_FILE.format(fold), map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        scores.append(module.evaluate(dm.val_dataloader())["test/loss"])
        assert rows[-1][f"val/loss/fold_{fold}"] == pytest.approx(scores[-1], rel=1e-5)
    assert rows[-1]["val/loss"] == pytest.approx(np.mean(scores), rel=1e-5)
    assert rows[-1]["val/loss_std"] == pytest.approx(np.std(scores), rel=1e-4)
    assert len(set(np.round(scores, 6))) == 3  # three different models on three different parts


def test_kfold_regime_study_through_the_cli(harness_home: Path, tmp_path: Path):
    study = write_study(
        tmp_path,
        {
            "name": "kfold-regimes",
            "data": {**KFOLD, "split": {"kind": "kfold", "folds": 2, "test": 0.2},
                     "preprocessing": [{"name": "regime_bins", "column": "temperature", "bins": 2}, "standardize"]},
            "model": {"kind": "mlp", "hidden": [8]},
            "train": {"max_epochs": 2, "batch_size": 32},
            "search": {"strategy": "random", "num_trials": 2, "space": {"train.optimizer.lr": {"choice": [0.01, 0.001]}}},
        },
    )
    result = run_cli("run", str(study), "--quiet")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sealed test split per regime" in result.stdout and "temperature_bin_1" in result.stdout
    assert " ± " in result.stdout  # best trials show val/loss as mean ± std over folds
    client = MlflowClient(f"sqlite:///{harness_home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kfold-regimes")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    for key in ("val/loss", "val/loss_std", "val/loss/fold_1", "val/loss/temperature_bin_0", "val/rmse/speed_bin_2"):
        assert key in child.data.metrics, key
    metrics = parent.data.metrics
    assert {"test/loss", "test/loss_std", "test/rmse/temperature_bin_0", "test/rmse/temperature_bin_1"} <= set(metrics)
    assert all("test/" not in key for key in child.data.metrics)  # trials never see the test split
