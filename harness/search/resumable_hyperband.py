"""HyperBand and BOHB schedulers whose brackets survive `harness resume`.

Ray Tune saves neither scheduler's state, and a fresh one given the restored trials puts each
(finished ones included) into new brackets; a finished trial never reports again, so its
bracket never completes a round, every paused trial waits for it, and the resumed study stalls
("No trial is running and no new trial has been started"). These keep their brackets with the
experiment (`SchedulerStateCallback`), trial objects saved by id, and put each restored trial
back where it was: a trial that was waiting at its bracket's milestone is paused again, one the
scheduler had already stopped stays stopped, and trials the searcher adds later join brackets
as before.
"""

from __future__ import annotations

import copy
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandForBOHB, HyperBandScheduler

# Bracket attributes that hold Trial objects (ray.tune.schedulers.hyperband._Bracket).
_LIVE, _ALL, _UNPAUSE = "_live_trials", "_all_trials", "trials_to_unpause"


class _ResumableBrackets:
    """Mixin for HyperBandScheduler and its BOHB variant."""

    _hyperbands: list[list[Any]]
    _trial_info: dict[Any, tuple[Any, int]]
    _state: dict[str, Any]

    def saved_state(self) -> dict[str, Any]:
        """The scheduler's attributes, with every Trial replaced by its id."""
        copies: dict[int, Any] = {}

        def by_id(bracket: Any) -> Any:
            if bracket is None:
                return None
            if id(bracket) not in copies:
                saved = copy.copy(bracket)
                setattr(saved, _LIVE, {t.trial_id: r for t, r in getattr(bracket, _LIVE).items()})
                setattr(saved, _ALL, [t.trial_id for t in getattr(bracket, _ALL)])
                setattr(saved, _UNPAUSE, {t.trial_id for t in getattr(bracket, _UNPAUSE, set())})
                copies[id(bracket)] = saved
            return copies[id(bracket)]

        state = {k: v for k, v in vars(self).items() if k not in ("_hyperbands", "_trial_info", "_state", "_saved", "_restored")}
        state["_hyperbands"] = [[by_id(b) for b in band] for band in self._hyperbands]
        state["_trial_info"] = {t.trial_id: (by_id(b), band) for t, (b, band) in self._trial_info.items()}
        state["_state"] = {**self._state, "bracket": by_id(self._state["bracket"])}
        return state

    def restore_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        saved_info = state.pop("_trial_info")
        vars(self).update(state)
        self._trial_info = {}
        self._saved = saved_info  # trial id -> (bracket, band) until Ray adds the trial back

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        saved = getattr(self, "_saved", {}).pop(trial.trial_id, None)
        if saved is None:
            super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
            return
        bracket, band = saved
        self._trial_info[trial] = (bracket, band)
        live, unpause = getattr(bracket, _LIVE), getattr(bracket, _UNPAUSE)
        setattr(bracket, _ALL, [trial if t == trial.trial_id else t for t in getattr(bracket, _ALL)])
        if trial.trial_id in unpause:
            unpause.discard(trial.trial_id)
            unpause.add(trial)
        if trial.trial_id not in live:
            # The scheduler had stopped it (or it had ended) before the save: it stays stopped.
            if trial.status != Trial.ERROR:
                trial.set_status(Trial.TERMINATED)
            return
        result = live.pop(trial.trial_id)
        live[trial] = result
        if trial.status == Trial.PENDING and result is not None and trial not in unpause and not bracket.continue_trial(trial):
            # It had reached this round's milestone and was paused, waiting for the others.
            trial.set_status(Trial.PAUSED)


class ResumableHyperBand(_ResumableBrackets, HyperBandScheduler):
    """HyperBandScheduler whose brackets `harness resume` restores."""


class ResumableHyperBandForBOHB(_ResumableBrackets, HyperBandForBOHB):
    """HyperBandForBOHB whose brackets `harness resume` restores."""
