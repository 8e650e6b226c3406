"""Every dataset loads offline with its documented shape and dtypes."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from lightning_modules.data import DATASETS, dataset_config
from lightning_modules.data.datasets import load_dataset
from lightning_modules.data.synthetic import PolyConfig, true_function
from lightning_modules.data.timeseries import pad_series, read_ts, statsmodels_series, ucr_files

# name or config -> (x shape, y dtype, task, classes, regime columns), as docs/data.md lists them
DOCUMENTED = {
    "digits": ((1797, 1, 8, 8), np.int64, "classification", 10, ()),
    "mnist": ((5000, 1, 28, 28), np.int64, "classification", 10, ()),
    "ucr:JapaneseVowels": ((640, 29, 12), np.int64, "classification", 9, ()),
    "ucr:BasicMotions": ((80, 100, 6), np.int64, "classification", 4, ()),
    "ucr:ItalyPowerDemand": ((1096, 24, 1), np.int64, "classification", 2, ()),
    "ucr:GunPoint": ((200, 150, 1), np.int64, "classification", 2, ()),
    "ucr:ArrowHead": ((211, 251, 1), np.int64, "classification", 3, ()),
    "forecast:sunspots": ((285, 24, 1), np.float32, "regression", 0, ()),
    "forecast:co2": ((2260, 24, 1), np.float32, "regression", 0, ()),
    "poly": ((200, 1), np.float32, "regression", 0, ("x",)),
    "adding": ((2000, 50, 2), np.float32, "regression", 0, ()),
}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network socket fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dataset tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_dataset_loads_offline_with_documented_shape(name: str, offline: None):
    shape, y_dtype, task, classes, regimes = DOCUMENTED[name]
    data = load_dataset(dataset_config(name), seed=0)
    assert data.x.shape == shape and data.x.dtype == np.float32
    assert data.y.shape == (shape[0],) and data.y.dtype == y_dtype
    assert data.task == task and data.num_classes == classes
    assert tuple(data.regimes) == regimes == DATASETS.get(name.split(":")[0]).regimes
    assert np.isfinite(data.x).all()
    if classes:
        assert set(np.unique(data.y)) == set(range(classes))


def test_motor_shape_dtypes_and_regimes(offline: None):
    data = load_dataset(dataset_config({"name": "motor", "num_samples": 40, "length": 64}), seed=0)
    assert data.x.shape == (40, 64, 8) and data.x.dtype == np.float32
    assert data.y.shape == (40,) and data.y.dtype == np.float32 and data.task == "regression"
    assert set(data.regimes) == {"temperature", "speed", "load"} and data.time is not None
    faults = load_dataset(dataset_config({"name": "motor", "num_samples": 200, "length": 16, "target": "fault"}), 0)
    assert faults.y.dtype == np.int64 and faults.num_classes == 4 and set(np.unique(faults.y)) == {0, 1, 2, 3}


def test_unequal_lengths_are_padded_with_the_last_value():
    train, _ = ucr_files()["JapaneseVowels"]
    series, labels = read_ts(train)
    lengths = [len(s) for s in series]
    assert min(lengths) < max(lengths) and len(labels) == len(series) == 270
    padded = pad_series(series)
    i = int(np.argmin(lengths))
    assert np.allclose(padded[i, : lengths[i]], series[i])
    assert np.allclose(padded[i, lengths[i] :], series[i][-1])


def test_forecast_windows_follow_the_series():
    cfg = dataset_config({"name": "forecast", "series": "nile", "lookback": 10, "horizon": 3})
    data = load_dataset(cfg, seed=0)
    series = statsmodels_series("nile")
    assert data.x.shape == (len(series) - 12, 10, 1)
    assert np.allclose(data.x[5, :, 0], series[5:15]) and data.y[5] == pytest.approx(series[5 + 10 + 2])
    assert np.array_equal(data.time, np.arange(len(data.y)) + 12)  # index of each target value
    diff = load_dataset(dataset_config({**cfg.model_dump(), "difference": True}), seed=0)
    assert diff.y[5] == pytest.approx(series[17] - series[14])


def test_poly_noise_knob_and_true_function():
    clean = load_dataset(PolyConfig(num_samples=50, noise=0.0, function="cubic"), seed=1)
    assert np.allclose(clean.y, true_function(PolyConfig(function="cubic"), clean.x[:, 0]), atol=1e-6)
    noisy = load_dataset(PolyConfig(num_samples=4000, noise=0.3), seed=1)
    residual = noisy.y - true_function(PolyConfig(), noisy.x[:, 0])
    assert residual.std() == pytest.approx(0.3, rel=0.05)
    assert np.array_equal(noisy.regimes["x"].astype(np.float32), noisy.x[:, 0])
