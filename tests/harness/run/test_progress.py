"""The live progress view counts what has really happened: finished trials of the total at the
start, trials stopped by an interruption as interrupted (not stopped early), and the budget's
own unit when a study has one (a comparison's epoch budget)."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Trial

from harness.run.callbacks import ProgressCallback


def trial(trial_id: str, status: str, epochs: int = 0, loss: float | None = None, lr: float = 0.1) -> Trial:
    t = Trial("__fake", config={"train.optimizer.lr": lr}, stub=True, trial_id=trial_id)
    if epochs:
        t.run_metadata.last_result = {"epoch": epochs, "val/loss": loss}
    t.set_status(status)
    return t


def test_at_the_start_nothing_is_finished():
    view = ProgressCallback("val/loss", "min", max_epochs=5, total=6)
    trials = [trial(f"t{i}", Trial.PENDING) for i in range(6)]
    view.on_step_end(0, trials)
    assert view.progress(trials) == (0.0, 6.0, "trials")
    assert view.counts(trials) == {"done": 0, "stopped early": 0, "failed": 0, "running": 0, "pending": 6}
    assert view.headline(trials).startswith("trials 0/6 | elapsed 0:0")
    assert "ETA" not in view.headline(trials)  # no pace yet


def test_counts_progress_best_and_eta_while_running(capsys: pytest.CaptureFixture[str]):
    view = ProgressCallback("val/loss", "min", max_epochs=5, total=4)
    trials = [
        trial("a", Trial.TERMINATED, 5, 0.30, lr=0.01),
        trial("b", Trial.TERMINATED, 2, 0.90),  # stopped early by a scheduler
        trial("c", Trial.RUNNING, 3, 0.20, lr=0.03),
        trial("d", Trial.ERROR, 1, float("nan")),
    ]
    view.on_step_end(1, trials)
    assert view.counts(trials) == {"done": 1, "stopped early": 1, "failed": 1, "running": 1, "pending": 0}
    assert view.progress(trials) == (3.0, 4.0, "trials")
    best, best_trial = view.best(trials)
    assert best == 0.20 and best_trial is trials[2]  # the running trial's latest value counts
    assert "best val/loss 0.2000 (train.optimizer.lr=0.03)" in view.headline(trials)
    assert "ETA" in view.headline(trials)
    lines = capsys.readouterr().out.splitlines()  # not a terminal: one line per ended trial
    assert len(lines) == 3 and all(line.startswith("[trials 3/4]") for line in lines)


def test_trials_stopped_by_an_interruption_are_not_stopped_early(capsys: pytest.CaptureFixture[str]):
    view = ProgressCallback("val/loss", "min", max_epochs=5, total=3)
    trials = [trial("a", Trial.TERMINATED, 5, 0.3), trial("b", Trial.RUNNING, 2, 0.5), trial("c", Trial.RUNNING, 1, 0.6)]
    view.on_step_end(4, trials)
    # Ctrl-C: Ray Tune stops the running trials after the loop's last step, marking them TERMINATED.
    for t in trials[1:]:
        t.set_status(Trial.TERMINATED)
    final = view.counts(trials, final=True)
    assert final["interrupted"] == 2 and final["stopped early"] == 0 and final["done"] == 1
    view.on_experiment_end(trials)
    assert "interrupted: 2 running trial(s) stopped" in capsys.readouterr().out


def test_the_last_frame_on_a_terminal_counts_interrupted_trials_as_interrupted():
    view = ProgressCallback("val/loss", "min", max_epochs=5, total=3)
    trials = [trial("a", Trial.TERMINATED, 5, 0.3), trial("b", Trial.RUNNING, 2, 0.5), trial("c", Trial.RUNNING, 1, 0.6)]
    view.on_step_end(4, trials)
    for t in trials[1:]:
        t.set_status(Trial.TERMINATED)
    frame = view._render(trials, final=True)  # what `on_experiment_end` draws last on a terminal
    counts = frame.renderables[2].plain
    assert "interrupted 2" in counts and "stopped early 0" in counts and "done 1" in counts


def test_tallies_taken_as_trials_end_match_a_count_of_every_trial(capsys: pytest.CaptureFixture[str]):
    view = ProgressCallback("val/loss", "min", max_epochs=5, total=5, budget_epochs=25)
    trials = [trial("a", Trial.RUNNING, 1, 0.5), trial("b", Trial.RUNNING, 2, 0.4), trial("c", Trial.PENDING)]
    view.on_step_end(0, trials)
    assert view.counts(trials) == {"done": 0, "stopped early": 0, "failed": 0, "running": 2, "pending": 1}
    # a ends done with the best value so far; b is stopped early; two more trials arrive.
    trials[0].run_metadata.last_result = {"epoch": 5, "val/loss": 0.1}
    view.on_trial_result(1, trials, trials[0], {"epoch": 5, "val/loss": 0.1})
    trials[0].set_status(Trial.TERMINATED)
    trials[1].set_status(Trial.TERMINATED)
    trials += [trial("d", Trial.RUNNING, 4, 0.3), trial("e", Trial.ERROR, 1, float("nan"))]
    view.on_step_end(1, trials)
    view.on_step_end(2, trials)  # nothing new: no line printed twice, no trial counted twice
    assert view.counts(trials) == {"done": 1, "stopped early": 1, "failed": 1, "running": 1, "pending": 1}
    assert view.counts(trials) == ProgressCallback.counts(view, trials, final=True)  # the full count agrees
    assert view.progress(trials) == (5 + 2 + 4 + 1 + 0, 25.0, "epochs")
    assert view.best(trials) == (0.1, trials[0])  # an ended trial's value stays the best
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" trial ")[1].split()[0] for line in lines] == ["a", "b", "e"]


def test_a_budgeted_study_counts_in_the_budget_unit():
    view = ProgressCallback("objective/value", "min", max_epochs=3, total=30, budget_epochs=30)
    trials = [trial("a", Trial.TERMINATED, 3, 1.0), trial("b", Trial.TERMINATED, 1, 2.0), trial("c", Trial.RUNNING, 2, 0.5)]
    view.on_step_end(2, trials)
    assert view.progress(trials) == (6.0, 30.0, "epochs")  # not "2/30" trials under a 30-epoch budget
    assert view.headline(trials).startswith("epochs 6/30")
    timed = ProgressCallback("objective/value", "min", max_epochs=3, total=100_000, budget_seconds=60)
    spent, of, unit = timed.progress(trials)
    assert unit == "s" and of == 60 and 0 <= spent < 60


def test_the_view_survives_pickling_with_its_settings_only():
    import copy as copying

    view = ProgressCallback("val/loss", "min", 5, 6, budget_epochs=12)
    view.on_step_end(0, [trial("a", Trial.TERMINATED, 5, 0.1)])
    # Ray Tune pickles callbacks into its experiment state; a deep copy goes through the same
    # __getstate__ / __setstate__ without unpickling bytes.
    copy = copying.deepcopy(view)
    assert copy.budget_epochs == 12 and copy._ended == set() and copy._unreported == []
    assert copy._ended_counts == {"done": 0, "stopped early": 0, "failed": 0} and copy._best_ended is None


def test_a_periodic_action_runs_on_its_interval_and_never_stops_the_study(monkeypatch: pytest.MonkeyPatch):
    from harness.run import callbacks

    clock = [100.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    calls: list[float] = []

    def action() -> None:
        calls.append(clock[0])
        if len(calls) == 2:
            raise RuntimeError("the store is away")  # skipped; the study goes on

    refresh = callbacks.PeriodicCallback(action, every_s=60.0)
    for now in (110.0, 161.0, 170.0, 222.0, 230.0, 283.0):
        clock[0] = now
        refresh.on_step_end(0, [])
    assert calls == [161.0, 222.0, 283.0]
    restored = callbacks.PeriodicCallback.__new__(callbacks.PeriodicCallback)
    restored.__setstate__(refresh.__getstate__())  # pickled with the Tuner: the action stays behind
    assert restored.action is None and restored.every_s == 60.0
