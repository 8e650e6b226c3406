"""HyperBand's brackets settle what Ray Tune's leave waiting, and a restore never puts an ended
trial back among a bracket's live trials."""

from __future__ import annotations

import time
from pathlib import Path

from ray import tune
from ray.tune.experiment import Trial

from harness.search.resumable_hyperband import ResumableHyperBand


def _two_epochs(config: dict) -> None:
    for epoch in range(1, 3):
        time.sleep(config["delay"])
        tune.report({"loss": config["delay"], "epoch": epoch})


def _slow_one_ends_itself(trial_id: str, result: dict) -> bool:
    # A stop criterion ends the slow trial at max_t: the scheduler hears of it through
    # `on_trial_complete`, never through `on_trial_result`.
    return result["config"]["delay"] > 0.5 and result["training_iteration"] >= 2


class _OthersAtEachEnd(tune.Callback):
    """As each trial ends: its delay, and the other trials' statuses."""

    def __init__(self) -> None:
        self.ends: list[tuple[float, list[str]]] = []

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self.ends.append((trial.config["delay"], [t.status for t in trials if t is not trial]))


def test_a_trial_paused_at_max_t_is_stopped_when_its_bracket_ends_without_a_result(local_ray, tmp_path: Path):
    # max_t 2, eta 2: the first bracket runs both trials to max_t in one round. The fast one
    # reaches it first and is paused to wait for the slow one, which then ends through a stop
    # criterion. Ray's HyperBandScheduler leaves the fast one PAUSED and the study never ends
    # ("No trial is running and no new trial has been started"); the time budget only bounds a
    # regression.
    seen = _OthersAtEachEnd()
    tuner = tune.Tuner(
        _two_epochs,
        param_space={"delay": tune.grid_search([0.0, 2.0])},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            scheduler=ResumableHyperBand(time_attr="training_iteration", max_t=2, reduction_factor=2),
            time_budget_s=60,
        ),
        run_config=tune.RunConfig(stop=_slow_one_ends_itself, storage_path=str(tmp_path), verbose=0, callbacks=[seen]),
    )
    grid = tuner.fit()
    # The fast trial is stopped as the slow one ends, not left waiting (Ray's own leaves it
    # PAUSED until the time budget ends the study).
    assert seen.ends == [(0.0, [Trial.RUNNING]), (2.0, [Trial.TERMINATED])]
    assert sorted(r.metrics["training_iteration"] for r in grid) == [2, 2]


def _four_epochs(config: dict) -> None:
    case = config["case"]
    for epoch in range(1, 5):
        time.sleep(case["delay"])
        tune.report({"loss": case["loss"], "epoch": epoch})


def _ends_itself_at_two(trial_id: str, result: dict) -> bool:
    return result["config"]["case"]["ends_at_two"] and result["training_iteration"] >= 2


def test_a_halved_bracket_goes_on_when_a_trial_ends_without_a_result(local_ray, tmp_path: Path):
    # max_t 4, eta 2: three brackets, filled in order (3 trials to max_t 4; 3 from milestone 2;
    # 4 from milestone 1). In the third, the two best after milestone 1 go on to milestone 2;
    # the fast one waits there for the slow one, which then ends through a stop criterion.
    # Ray's HyperBandScheduler processes a bracket on a removal only before its first halving,
    # so the fast one would wait until the time budget ends the study, at epoch 2.
    quick = {"delay": 0.0, "loss": 5.0, "ends_at_two": False}
    third = [
        {"delay": 0.0, "loss": 1.0, "ends_at_two": False},  # the fast one
        {"delay": 1.0, "loss": 2.0, "ends_at_two": True},  # the slow one
        {"delay": 0.0, "loss": 3.0, "ends_at_two": False},
        {"delay": 0.0, "loss": 4.0, "ends_at_two": False},
    ]
    tuner = tune.Tuner(
        _four_epochs,
        param_space={"case": tune.grid_search([quick] * 6 + third)},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            scheduler=ResumableHyperBand(time_attr="training_iteration", max_t=4, reduction_factor=2),
            time_budget_s=90,
        ),
        run_config=tune.RunConfig(stop=_ends_itself_at_two, storage_path=str(tmp_path), verbose=0),
    )
    grid = tuner.fit()
    epochs = {(r.config["case"]["loss"], r.config["case"]["delay"]): r.metrics["training_iteration"] for r in grid}
    assert epochs[(1.0, 0.0)] == 4  # the fast one went on to max_t
    assert epochs[(2.0, 1.0)] == 2


def _trial(trial_id: str) -> Trial:
    return Trial("__fake", trial_id=trial_id, stub=True)


def test_a_restored_trial_that_had_ended_leaves_its_bracket():
    # The trial states and the scheduler's brackets are saved apart: a trial the brackets still
    # count as live may come back ended, and a bracket that waited on it would never finish.
    scheduler = ResumableHyperBand(time_attr="training_iteration", metric="loss", mode="min", max_t=4, reduction_factor=2)
    a, b = _trial("a"), _trial("b")
    for t in (a, b):
        scheduler.on_trial_add(None, t)
        t.set_status(Trial.RUNNING)
        assert scheduler.on_trial_result(None, t, {"training_iteration": 1, "loss": 1.0}) == "CONTINUE"
    state = scheduler.saved_state()

    restored = ResumableHyperBand(time_attr="training_iteration", metric="loss", mode="min", max_t=4, reduction_factor=2)
    restored.restore_state(state)
    a2, b2 = _trial("a"), _trial("b")
    a2.set_status(Trial.TERMINATED)
    b2.set_status(Trial.PENDING)
    restored.on_trial_add(None, a2)
    restored.on_trial_add(None, b2)
    bracket, _ = restored._trial_info[b2]
    assert bracket.current_trials() == [b2] and a2.status == Trial.TERMINATED
    assert b2.status == Trial.PENDING  # below its milestone: it runs on
