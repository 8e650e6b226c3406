"""HyperBand and BOHB schedulers whose brackets survive `harness resume`.

Ray Tune saves neither scheduler's state, and a fresh one given the restored trials puts each
(finished ones included) into new brackets; a finished trial never reports again, so its
bracket never completes a round, every paused trial waits for it, and the resumed study stalls
("No trial is running and no new trial has been started"). These keep their brackets with the
experiment (`SchedulerStateCallback`), trial objects saved by id, and put each restored trial
back where it was: a trial that was waiting at its bracket's milestone is paused again, one the
scheduler had already stopped stays stopped, and trials the searcher adds later join brackets
as before.

Both also finish what Ray's brackets leave waiting. A bracket in its last round whose last
running trial ends through `on_trial_complete` (a stop criterion, a trial restored past its
milestone that returns at once, an error) counts as finished, and Ray's `on_trial_remove` skips a
finished bracket, so the trials paused at max_t in it are never stopped and the study stalls.
After its first halving a bracket is never processed on a removal either. Here a removal settles
its bracket, and when nothing is left to run, any bracket whose live trials all wait at their
milestone is settled (`_settle`).
"""

from __future__ import annotations

import copy
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandForBOHB, HyperBandScheduler

# Bracket attributes that hold Trial objects (ray.tune.schedulers.hyperband._Bracket).
_LIVE, _ALL, _UNPAUSE = "_live_trials", "_all_trials", "trials_to_unpause"
_ENDED = (Trial.TERMINATED, Trial.ERROR)


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

        skip = ("_hyperbands", "_trial_info", "_state", "_saved", "_restored", "_processing")
        state = {k: v for k, v in vars(self).items() if k not in skip}
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
        if trial.trial_id not in live or trial.status in _ENDED:
            # The scheduler had stopped it (or it had ended) before the save: it stays stopped,
            # and a bracket never waits on it.
            live.pop(trial.trial_id, None)
            if trial.status != Trial.ERROR:
                trial.set_status(Trial.TERMINATED)
            return
        result = live.pop(trial.trial_id)
        live[trial] = result
        if trial.status == Trial.PENDING and result is not None and trial not in unpause and not bracket.continue_trial(trial):
            # It had reached this round's milestone and was paused, waiting for the others.
            trial.set_status(Trial.PAUSED)

    # Settling what Ray's brackets leave waiting.

    _processing = False

    def _process_bracket(self, tune_controller: Any, bracket: Any) -> str:
        # Stopping a trial from inside calls `on_trial_remove` again: no settling from there.
        self._processing = True
        try:
            return super()._process_bracket(tune_controller, bracket)  # type: ignore[misc]
        finally:
            self._processing = False

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        bracket, _ = self._trial_info[trial]
        super().on_trial_remove(tune_controller, trial)  # type: ignore[misc]
        if not self._processing:
            self._settle(tune_controller, bracket)

    def choose_trial_to_run(self, tune_controller: Any, *args: Any, **kwargs: Any) -> Trial | None:
        chosen = super().choose_trial_to_run(tune_controller, *args, **kwargs)  # type: ignore[misc]
        if chosen is None and not self._processing and self._settle_all(tune_controller):
            chosen = super().choose_trial_to_run(tune_controller, *args, **kwargs)  # type: ignore[misc]
        return chosen

    def _settle_all(self, tune_controller: Any) -> bool:
        """Settle every waiting bracket once no trial runs or waits to start. Only live trials
        are read (a study's ended trials have left their brackets), so this costs the trials
        still open, however many the study ran."""
        brackets = [b for band in self._hyperbands for b in band if b is not None]
        if any(t.status in (Trial.RUNNING, Trial.PENDING) for b in brackets for t in b.current_trials()):
            return False
        return any([self._settle(tune_controller, b) for b in brackets])  # a list: settle every one

    def _settle(self, tune_controller: Any, bracket: Any) -> bool:
        """If every live trial of `bracket` is paused at its milestone with none set to resume,
        do what the bracket's last result would have done: stop them all if the bracket is
        finished, else halve it (stop the worst, resume the best). Whether anything was done."""
        live = bracket.current_trials()
        unpause = getattr(bracket, _UNPAUSE)
        if not live or any(t.status != Trial.PAUSED or t in unpause for t in live) or not bracket.cur_iter_done():
            return False
        if bracket.finished():
            bracket.cleanup_full(tune_controller)
        else:
            self._process_bracket(tune_controller, bracket)
        return True


class ResumableHyperBand(_ResumableBrackets, HyperBandScheduler):
    """HyperBandScheduler whose brackets `harness resume` restores."""


class ResumableHyperBandForBOHB(_ResumableBrackets, HyperBandForBOHB):
    """HyperBandForBOHB whose brackets `harness resume` restores."""
