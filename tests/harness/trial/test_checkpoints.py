"""The checkpoint cadence: which epoch reports carry a checkpoint."""

from __future__ import annotations

import pytest

from harness.errors import SpecError
from harness.study import StudySpec
from harness.trial.checkpoints import COST_RATIO, MIN_INTERVAL_S, CheckpointCadence, cadence_for


def spec(**search: object) -> StudySpec:
    train = search.pop("train", {"max_epochs": 20})
    return StudySpec.model_validate({"name": "s", "train": train, "search": {"num_trials": 1, **search}})


def written_epochs(cadence: CheckpointCadence, epochs: int, stop_at: int | None = None) -> list[int]:
    out = []
    for epoch in range(1, epochs + 1):
        metrics = {"epoch": epoch, **({"stop_reason": "no improvement"} if epoch == stop_at else {})}
        if cadence.due(metrics, now=0.0):
            out.append(epoch)
            cadence.written(0.0, now=0.0)
        if epoch == stop_at:
            break
    return out


def test_every_n_epochs_and_always_the_last():
    cadence = cadence_for(spec(train={"max_epochs": 12, "checkpoint_every": 5}))
    assert written_epochs(cadence, 12) == [5, 10, 12]


def test_an_early_stop_gets_the_final_checkpoint():
    cadence = cadence_for(spec(train={"max_epochs": 12, "checkpoint_every": 5}))
    assert written_epochs(cadence, 12, stop_at=7) == [5, 7]


def test_schedulers_get_the_epochs_they_act_on():
    # ASHA: rungs at grace_period * reduction_factor**k (1, 3, 9 for max_t 20, rf 3).
    assert written_epochs(cadence_for(spec(strategy="asha", train={"max_epochs": 20, "checkpoint_every": 100})), 20) == [
        1, 3, 9, 20,
    ]
    asha = cadence_for(spec(strategy="asha", grace_period=2, reduction_factor=2.5, train={"max_epochs": 20, "checkpoint_every": 100}))
    assert written_epochs(asha, 20) == [2, 5, 13, 20]  # 2, 5, 12.5 -> judged at 13
    pbt = spec(strategy="pbt", perturbation_interval=4, space={"train.optimizer.lr": {"loguniform": [1e-4, 1e-1]}},
               train={"max_epochs": 10, "checkpoint_every": 100})
    assert written_epochs(cadence_for(pbt), 10) == [4, 8, 10]
    median = spec(strategy="median", grace_period=3, train={"max_epochs": 6, "checkpoint_every": 100})
    assert written_epochs(cadence_for(median), 6) == [3, 4, 5, 6]
    assert written_epochs(cadence_for(spec(strategy="hyperband", train={"max_epochs": 4, "checkpoint_every": 100})), 4) == [
        1, 2, 3, 4,
    ]


def test_a_budget_checkpoints_every_epoch():
    # A budget may cut a trial after any epoch: that epoch's weights are its final ones.
    cadence = cadence_for(spec(budget_epochs=50, train={"max_epochs": 5, "checkpoint_every": 100}))
    assert written_epochs(cadence, 5) == [1, 2, 3, 4, 5]


def test_auto_waits_for_the_larger_of_the_floor_and_twenty_times_the_cost():
    cadence = cadence_for(spec(train={"max_epochs": 100}))
    assert cadence.every is None
    cadence.written(started=0.0, now=0.0)
    assert not cadence.due({"epoch": 1}, now=MIN_INTERVAL_S - 0.1)
    assert cadence.due({"epoch": 1}, now=MIN_INTERVAL_S)
    cadence.written(started=100.0, now=102.0)  # a checkpoint that took 2 s
    assert not cadence.due({"epoch": 2}, now=102.0 + COST_RATIO * 2 - 0.1)
    assert cadence.due({"epoch": 2}, now=102.0 + COST_RATIO * 2)
    assert cadence.due({"epoch": 100}, now=102.0)  # the last epoch, whatever the time


def test_checkpoint_every_in_the_spec():
    assert spec(train={"checkpoint_every": "auto"}).train.checkpoint_every is None
    # Unset, it stays out of the dump: existing studies keep their hashes.
    assert "checkpoint_every" not in spec().to_dict()["train"]
    assert spec(train={"checkpoint_every": 3}).to_dict()["train"]["checkpoint_every"] == 3
    for bad in (0, "often", 2.5, True):
        with pytest.raises((SpecError, ValueError)):
            spec(train={"checkpoint_every": bad})
