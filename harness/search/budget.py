"""A study's compute budget: stop the whole search once its trials have run
`search.budget_epochs` epochs in all, or it has searched for `search.time_budget_s` seconds.

A Ray Tune stopper. Ray saves the stopper with the study's state (every few seconds and when
stopped), and `harness resume` restores it from there, so what was spent before a stop counts.
When the budget runs out it records why in the study folder, where `runner.finalize` reads it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray.tune.stopper import Stopper

BUDGET_FILE = "harness_budget.json"
BUDGET_REASON = "study budget exhausted"


def read_budget(folder: Path) -> dict[str, Any]:
    """What a study folder records about its budget once spent: epochs, seconds, `exhausted`."""
    try:
        return json.loads((Path(folder) / BUDGET_FILE).read_text())
    except (OSError, ValueError):
        return {}


class StudyBudget(Stopper):
    """Counts each trial's latest epoch (a trial continued after a resume or a pause is not
    counted twice) and the seconds the search has run; ends every trial once either budget is
    spent. Trials it ends get no `on_trial_complete`, so their MLflow runs are closed by the
    runner's finalize, with `BUDGET_REASON`."""

    def __init__(self, folder: Path, epochs: int | None, seconds: float | None) -> None:
        self.folder, self.epochs, self.seconds = Path(folder), epochs, seconds
        self._epochs_by_trial: dict[str, int] = {}
        self._seconds_spent = 0.0
        self._last_check: float | None = None  # the clock starts at the first check of a session
        self.exhausted: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last_check"] = None  # time between a stop and a resume is not search time
        return state

    def spent(self) -> tuple[int, float]:
        """(epochs run by all trials, seconds searched) so far."""
        return sum(self._epochs_by_trial.values()), self._seconds_spent

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        self._epochs_by_trial[trial_id] = max(epoch, self._epochs_by_trial.get(trial_id, 0))
        return False  # never one trial alone: `stop_all` ends them all together

    def stop_all(self) -> bool:
        now = time.monotonic()
        if self._last_check is not None:
            self._seconds_spent += now - self._last_check
        self._last_check = now
        if self.exhausted is None:
            epochs, seconds = self.spent()
            if self.epochs is not None and epochs >= self.epochs:
                self.exhausted = f"{epochs} epochs run of a budget of {self.epochs}"
            elif self.seconds is not None and seconds >= self.seconds:
                self.exhausted = f"{seconds:.1f} s searched of a budget of {self.seconds:g} s"
            if self.exhausted is not None:
                self._record(epochs, seconds)
        return self.exhausted is not None

    def _record(self, epochs: int, seconds: float) -> None:
        state = {
            "exhausted": self.exhausted,
            "epochs": epochs,
            "seconds": round(seconds, 3),
            "budget_epochs": self.epochs,
            "time_budget_s": self.seconds,
        }
        try:
            tmp = self.folder / (BUDGET_FILE + ".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(self.folder / BUDGET_FILE)  # atomic: a killed driver leaves none or all of it
        except OSError:
            pass  # a study folder moved before a resume: finalize also sums the epochs itself
