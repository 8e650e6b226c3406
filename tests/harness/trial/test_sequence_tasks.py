"""Synthetic sequence tasks: what they contain, how the datamodule serves them, and the long-range
memory they expose (an LSTM solves the adding problem where a vanilla RNN cannot)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.study import spec_from_dict
from harness.trial.training import fit_trial
from lightning_modules.data import ArrayDataModule, SplitConfig
from lightning_modules.data.synthetic import AddingConfig, CopyConfig, adding_problem, copy_task


def test_adding_problem_marks_one_value_in_each_half_and_sums_them():
    data = adding_problem(AddingConfig(length=40, num_samples=300), seed=1)
    assert data.x.shape == (300, 40, 2) and data.y.shape == (300,)
    assert data.kind == "sequence" and data.task == "regression" and not data.per_step
    values, markers = data.x[..., 0], data.x[..., 1]
    assert (markers[:, :20].sum(1) == 1).all() and (markers[:, 20:].sum(1) == 1).all()
    assert np.allclose(data.y, (values * markers).sum(1))
    assert 0.0 <= values.min() and values.max() <= 1.0


def test_copy_task_repeats_the_symbols_after_the_delay():
    cfg = CopyConfig(length=20, symbols=3, alphabet=4, num_samples=200)
    data = copy_task(cfg, seed=0)
    assert data.x.shape == (200, 20, 6) and data.y.shape == (200, 20)
    assert data.per_step and data.task == "classification" and data.num_classes == 5
    tokens = data.x.argmax(-1)
    assert np.allclose(data.x.sum(-1), 1.0)  # one-hot
    assert (tokens[:, 20 - 3 - 1] == 5).all()  # the delimiter, then the recall steps
    assert np.array_equal(data.y[:, -3:], tokens[:, :3])
    assert (data.y[:, :-3] == 0).all() and (tokens[:, :3] >= 1).all()


@pytest.mark.parametrize("make, cfg", [(adding_problem, AddingConfig(length=15)), (copy_task, CopyConfig(length=15))])
def test_tasks_are_deterministic_in_the_seed(make, cfg):
    a, b, c = make(cfg, seed=3), make(cfg, seed=3), make(cfg, seed=4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)


def test_copy_length_must_leave_room_for_recall():
    with pytest.raises(ValueError, match=r"length \(6\) must be >= 2 \* symbols \+ 1 \(7\)"):
        CopyConfig(length=6, symbols=3)


def test_datamodule_keeps_sequence_shape_and_standardizes_per_channel():
    dm = ArrayDataModule({"name": "adding", "length": 12, "num_samples": 400}, SplitConfig(), ["standardize"], 32)
    x, y = dm.split_tensors("train")
    assert x.shape[1:] == (12, 2) and y.dim() == 1
    per_channel = x.numpy().reshape(-1, 2)
    assert np.allclose(per_channel.mean(0), 0, atol=1e-5) and np.allclose(per_channel.std(0), 1, atol=1e-4)
    val = dm.split_tensors("val")[0].numpy().reshape(-1, 2)
    assert np.abs(val.mean(0)).max() > 1e-3  # train's statistics, not val's own
    assert dm.shape.kind == "sequence" and dm.shape.input == (12, 2) and dm.shape.output == (1,)


def test_per_step_labels_split_without_stratifying():
    dm = ArrayDataModule({"name": "copy", "length": 11, "num_samples": 100}, SplitConfig(kind="stratified"), [], 16)
    sizes = [len(dm.split_tensors(name)[1]) for name in ("train", "val", "test")]
    assert sum(sizes) == 100 and dm.split_tensors("train")[1].shape[1:] == (11,)
    assert dm.shape.per_step and dm.shape.output == (11, 9)


def adding_study(kind: str, seed: int) -> dict:
    """The adding problem at 100 steps: ~2,000 Adam steps of a 32-unit network."""
    return {
        "name": f"adding-{kind}",
        "seed": seed,
        "data": {
            "dataset": {"name": "adding", "length": 100, "num_samples": 3000},
            "split": {"kind": "random", "val": 0.15, "test": 0.15},
            "preprocessing": [],
        },
        "model": {"kind": kind, "hidden_size": 32},
        "train": {"max_epochs": 60, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.02, "weight_decay": 0.0}},
    }


def final_val_loss(raw: dict) -> float:
    history: list[dict] = []
    fit_trial(spec_from_dict(raw), lambda metrics, trainer: history.append(metrics))
    return history[-1]["val/loss"]


def test_lstm_remembers_over_100_steps_where_a_vanilla_rnn_does_not():
    # Predicting the mean scores an MSE of ~0.167. Measured over seeds 0-7, the LSTM left that
    # plateau by epoch 47 of 60 and ended below 0.001; over seeds 0-4 the RNN ended above 0.16.
    rnn = final_val_loss(adding_study("rnn", seed=0))
    lstm = final_val_loss(adding_study("lstm", seed=0))
    assert rnn > 0.1, f"the vanilla RNN should not beat the mean predictor by much (val/loss {rnn:.4f})"
    assert lstm < 0.25 * rnn, f"LSTM val/loss {lstm:.4f} vs RNN {rnn:.4f}"
