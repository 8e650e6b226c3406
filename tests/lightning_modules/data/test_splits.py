"""Splits: chronological order, k folds, regime groups, bad settings; no statistic leaks from val or test."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_modules.data import ArrayDataModule, split_config
from lightning_modules.data.datasets import ArrayDataset, dataset_config, load_dataset
from lightning_modules.data.splits import regime_bins, split_dataset

MOTOR = {"name": "motor", "num_samples": 300, "length": 32}


def motor_data(seed: int = 0) -> ArrayDataset:
    return load_dataset(dataset_config(MOTOR), seed)


def test_chronological_split_never_trains_on_the_future():
    rng = np.random.default_rng(0)
    n = 200
    # Samples stored out of time order: the split must follow `time`, not the storage order.
    data = ArrayDataset(x=rng.normal(size=(n, 3)).astype(np.float32), y=np.zeros(n, np.float32),
                        task="regression", time=rng.permutation(n).astype(float) * 0.5)
    idx = split_dataset(data, split_config({"kind": "chronological", "val": 0.2, "test": 0.1, "gap": 5}), seed=0)
    t = data.time
    assert t[idx.train].max() < t[idx.val].min() and t[idx.val].max() < t[idx.test].min()
    assert len(idx.val) == 40 and len(idx.test) == 20 and len(idx.train) == n - 60 - 10
    # 5 samples (0.5 time units apart) are left out at each boundary.
    assert t[idx.val].min() - t[idx.train].max() == pytest.approx(6 * 0.5)
    assert t[idx.test].min() - t[idx.val].max() == pytest.approx(6 * 0.5)


def test_shuffled_chronological_split_mixes_train_and_val_but_keeps_the_test_future():
    rng = np.random.default_rng(1)
    n = 200
    data = ArrayDataset(x=rng.normal(size=(n, 3)).astype(np.float32), y=np.zeros(n, np.float32),
                        task="regression", time=rng.permutation(n).astype(float))
    settings = {"kind": "chronological", "val": 0.2, "test": 0.1, "gap": 5}
    plain = split_dataset(data, split_config(settings), seed=0)
    mixed = split_dataset(data, split_config({**settings, "shuffle": True}), seed=0)
    t = data.time
    # The same sizes and the same future test span, behind the same gap.
    assert np.array_equal(mixed.test, plain.test)
    assert (len(mixed.train), len(mixed.val)) == (len(plain.train), len(plain.val))
    assert t[mixed.test].min() - max(t[mixed.train].max(), t[mixed.val].max()) == 6
    # Val is drawn from the whole past, so train holds samples later than some of val's.
    assert not set(mixed.train) & set(mixed.val)
    assert t[mixed.train].max() > t[mixed.val].min() and t[mixed.val].max() > t[mixed.train].min()
    other = split_dataset(data, split_config({**settings, "shuffle": True}), seed=1)
    assert not np.array_equal(other.val, mixed.val)


def test_chronological_split_of_motor_windows_is_ordered_by_time():
    dm = ArrayDataModule(MOTOR, {"kind": "chronological", "gap": 3}, [], batch_size=16)
    data, idx = dm.data, split_dataset(dm.data, dm.split_cfg, 0)
    assert data.time[idx.train].max() < data.time[idx.val].min() < data.time[idx.val].max() < data.time[idx.test].min()


def test_kfold_val_parts_partition_the_rest_and_test_stays_sealed():
    data = load_dataset(dataset_config("digits"), 0)
    cfg = split_config({"kind": "kfold", "folds": 4, "test": 0.2})
    folds = [split_dataset(data, cfg, seed=1, fold=i) for i in range(4)]
    test = folds[0].test
    assert all(np.array_equal(f.test, test) for f in folds)
    vals = np.concatenate([f.val for f in folds])
    assert len(vals) == len(set(vals)) == len(data.y) - len(test) and not set(vals) & set(test)
    for f in folds:
        assert not set(f.train) & set(f.val) and len(f.train) + len(f.val) + len(test) == len(data.y)
        shares = np.bincount(data.y[f.val], minlength=10) / len(f.val)
        assert np.abs(shares - 0.1).max() < 0.03  # stratified


def test_group_split_holds_out_whole_regime_bins():
    data = motor_data()
    idx = split_dataset(data, split_config({"kind": "group", "column": "temperature", "bins": 6}), seed=2)
    bins = regime_bins(data, "temperature", 6)
    train, val, test = (set(bins[i]) for i in (idx.train, idx.val, idx.test))
    assert not train & val and not train & test and not val & test and train | val | test == set(range(6))


def test_regime_split_puts_every_bin_in_every_split():
    data = motor_data()
    idx = split_dataset(data, split_config({"kind": "regime", "column": "load", "bins": 3, "val": 0.2}), seed=0)
    bins = regime_bins(data, "load", 3)
    for part in (idx.train, idx.val, idx.test):
        shares = np.bincount(bins[part], minlength=3) / len(part)
        assert shares.min() > 0.25


@pytest.mark.parametrize("leak", [False, True])
def test_fitted_statistics_come_from_the_train_split_alone(leak: bool):
    """Scaler and outlier thresholds equal those computed on train by hand; under `leak` they are
    those of train and val together; the sealed test split is never part of a fit."""
    steps = [{"name": "zscore", "threshold": 2.5, "action": "flag"}, "standardize"]
    dm = ArrayDataModule(MOTOR, {"kind": "chronological"}, steps, batch_size=16, leak=leak)
    dm.setup()
    idx = split_dataset(dm.data, dm.split_cfg, 0)
    seen = np.concatenate([idx.train, idx.val]) if leak else idx.train
    rows = dm.data.x[seen].reshape(-1, 8).astype(np.float64)
    zscore, scaler, *_regime_binning = dm.prepared.fitted  # the default regime bins come last
    assert np.allclose(zscore.low_, rows.mean(0) - 2.5 * rows.std(0), rtol=1e-5, atol=1e-5)
    flagged = np.abs(rows - rows.mean(0)) > 2.5 * rows.std(0)
    flag_channel = np.concatenate([rows, flagged.any(axis=1, keepdims=True)], axis=1)
    assert np.allclose(scaler.scaler_.mean_, flag_channel.mean(0), rtol=1e-5, atol=1e-5)
    assert np.allclose(scaler.scaler_.scale_, flag_channel.std(0), rtol=1e-4, atol=1e-6)
    everything = dm.data.x.reshape(-1, 8).astype(np.float64)
    assert not np.allclose(scaler.scaler_.mean_[:8], everything.mean(0), rtol=1e-3)
