"""The specialists and bias-variance trials: what each epoch reports adds up."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.study import spec_from_dict
from harness.trial.bias_variance import fit_bias_variance
from harness.trial.build import build
from harness.trial.specialists import fit_specialists

SPECIALISTS = {
    "name": "spec", "data": {"dataset": {"name": "motor", "num_samples": 160, "length": 32}, "split": {"kind": "random"},
                             "preprocessing": [{"name": "regime_bins", "column": "temperature", "bins": 2}, "standardize"]},
    "model": {"kind": "mlp", "hidden": [8]}, "train": {"max_epochs": 3, "batch_size": 32},
    "specialists": {"column": "temperature"},
}


def test_the_specialists_together_are_the_sample_weighted_mean_of_their_regimes() -> None:
    spec = spec_from_dict(SPECIALISTS)
    rows: list[dict[str, Any]] = []
    fit_specialists(spec, lambda metrics, where: rows.append(metrics))
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    counts = np.bincount(build(spec)[0].regime_groups("val")["temperature"], minlength=2)
    for row in rows:
        per_bin = [row[f"val/specialist/loss/temperature_bin_{i}"] for i in range(2)]
        assert row["val/specialist/loss"] == pytest.approx(float(np.dot(counts, per_bin) / counts.sum()), rel=1e-5)
        assert row["val/specialist/rmse/temperature_bin_0"] == pytest.approx(np.sqrt(per_bin[0]))
        assert "val/loss/temperature_bin_1" in row  # the global model's, for the same regime


def test_a_constant_model_has_the_closed_form_variance_of_the_training_mean() -> None:
    # Degree 0 fitted to convergence predicts its training set's mean: bias^2 ~ mean sin^2 and
    # variance ~ (1/2 + noise^2) / n_train (see the decomposition's own test); here 30 sets.
    spec = spec_from_dict({
        "name": "bv", "seed": 3,
        "data": {"dataset": {"name": "poly", "num_samples": 50, "noise": 0.3}, "split": {"kind": "random", "val": 0.2, "test": 0.2},
                 "preprocessing": []},
        "model": {"kind": "polynomial", "degree": 0}, "train": {"max_epochs": 60, "batch_size": "full", "optimizer": {"name": "adam", "lr": 0.1}},
        "bias_variance": {"training_sets": 30, "points": 101},
    })
    rows: list[dict[str, Any]] = []
    fit_bias_variance(spec, lambda metrics, where: rows.append(metrics))
    last, n_train = rows[-1], 30
    assert last["bv/bias2"] == pytest.approx(np.mean(np.sin(np.pi * np.linspace(-1, 1, 101)) ** 2), abs=0.05)
    assert last["bv/variance"] == pytest.approx((0.5 + 0.09) / n_train, rel=0.5)
    assert last["bv/noise"] == pytest.approx(0.09)
    # Started at zero (already E[f] here), the constants spread out as they learn their sets' means.
    assert rows[0]["bv/variance"] < last["bv/variance"]
