"""Ray Tune callbacks that run in the driver: MLflow child runs and the live progress view."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from harness.tracking import contract as c
from harness.tracking.trials import ChildRuns, config_json, error_reason
from harness.tracking.writer import writer
from harness.trial.retries import RETRIES_AFTER_NODE_LOSS, refuse_retry


def trial_epochs(trial: Trial) -> int:
    return int((trial.last_result or {}).get(c.EPOCH, 0))


def trial_error_text(trial: Trial) -> str:
    """A failed trial's traceback text.

    Ray writes it to the trial's local folder first and copies it to storage later, so at
    `on_trial_error` time only the local file has it.
    """
    local = trial.error_file
    if local and os.path.isfile(local):
        with open(local) as handle:
            return handle.read()
    return trial.get_error() or "trial raised an error"


# How Ray words a lost worker (`RayActorError`: the actor died or became unreachable because its
# process or node went away), as it writes the error into the trial's error file. An actor that
# died of an error in its own creation is not one of these: that error would come back.
_LOST_WORKER = re.compile(r"The actor (died unexpectedly|experienced an error before finishing|\S+ is unavailable)")


def lost_worker(trial: Trial) -> str | None:
    """Why a failed trial's worker was lost, from the last failure in its error file (the text
    of the exception Ray caught; read as text, never unpickled); None when the trial failed
    with its own error (a task's traceback), or when that cannot be told."""
    last = trial_error_text(trial).rsplit("Failure # ", 1)[-1]
    lines = [line.strip() for line in last.splitlines()[1:] if line.strip()]  # after "N (occurred at ...)"
    if not lines or not _LOST_WORKER.match(lines[0]):
        return None
    return lines[0][:500]


class RetryGuard(Callback):
    """Ray Tune retries every failed trial (up to `RETRIES_AFTER_NODE_LOSS` times); this keeps
    the retries for trials whose worker or node was lost. A trial that failed with its own error
    is recorded as not to be retried before Ray restarts it, and that restart fails at once
    (`harness.trial.retries`), so the trial ends FAILED with its own error after one more
    failure and no more training."""

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        cause = lost_worker(trial)
        failures = trial.run_metadata.num_failures
        if cause is None:
            reason = error_reason(trial_error_text(trial))
            refuse_retry(trial.trial_id, f"{reason} (the trial's own error: not retried)")
            trial.max_failures = failures  # the refused start is its last
            return
        print(
            f"trial {trial.trial_id} lost its worker ({cause}); Ray Tune restarts it from its last checkpoint "
            f"(retry {failures} of at most {RETRIES_AFTER_NODE_LOSS})",
            flush=True,
        )


def final_weight_histogram(checkpoint: Any) -> dict[str, list[float]] | None:
    """The weight histogram saved beside a trial's latest checkpoint, if any."""
    if checkpoint is None:
        return None
    try:
        with checkpoint.as_directory() as folder:
            path = Path(folder) / c.WEIGHTS_HISTOGRAM_JSON
            return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None  # evidence only: a missing or unreadable file must not fail the study


class MlflowTrialCallback(Callback):
    """Mirrors every trial into an MLflow child run as Ray Tune reports it. The writes go to the
    driver's MLflow writer process (`harness.tracking.writer`), so Tune's loop never waits for
    the store; what a write needs of the trial is copied now, since Tune changes it later."""

    def __init__(self, runs: ChildRuns) -> None:
        self.runs = runs
        self.key = ""
        self.sent: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {"runs": self.runs}  # Ray pickles callbacks into its experiment state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["runs"])  # type: ignore[misc]

    def setup(self, **info: Any) -> None:
        self.key, self.sent = uuid.uuid4().hex, set()
        writer().open(self.key, self.runs.study, self.runs.scheduler)
        writer().call(self.key, "load_existing")

    def _config(self, trial: Trial) -> dict[str, Any]:
        """The trial's configuration, its resolved spec sent along the first time it is seen
        (the writer process has no study spec: it would need torch to build one)."""
        config = dict(trial.config)
        text = config_json(config)
        if text not in self.sent:
            self.sent.add(text)
            specs = self.runs.specs
            writer().spec(self.key, text, specs.trial_yaml(config), specs.trial_max_epochs(config))
        return config

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        writer().call(self.key, "ensure", trial.trial_id, self._config(trial), True)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        plain = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}
        writer().call(self.key, "log_epoch", trial.trial_id, self._config(trial), plain)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._end(trial, error=None)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        cause = lost_worker(trial)
        if cause is not None:  # restarted by Ray Tune: the same run goes on, tagged with the cause
            retries = trial.run_metadata.num_failures
            writer().call(self.key, "note_retry", trial.trial_id, self._config(trial), retries, cause)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        # Read now: Ray moves the error file from the trial's local folder to storage later.
        self._end(trial, error=trial_error_text(trial))

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        writer().flush()

    def _end(self, trial: Trial, error: str | None) -> None:
        config = self._config(trial)
        writer().later(self._evidence, trial.trial_id, config, trial.checkpoint)
        writer().call(self.key, "close", trial.trial_id, config, trial_epochs(trial), error)

    def _evidence(self, trial_id: str, config: dict[str, Any], checkpoint: Any) -> None:
        """The final weight histogram and a compression trial's shipped artifact, read from
        beside the trial's final checkpoint (in the driver: the checkpoint may be remote)."""
        histogram = final_weight_histogram(checkpoint)
        if histogram is not None:
            writer().call(self.key, "log_weight_histogram", trial_id, config, histogram)
        if checkpoint is None:
            return
        try:
            with checkpoint.as_directory() as folder:
                artifact = Path(folder) / c.COMPRESSED_DIR
                if artifact.is_dir():
                    copy = Path(tempfile.mkdtemp(prefix="harness-compressed-")) / c.COMPRESSED_DIR
                    shutil.copytree(artifact, copy)
                    writer().call(self.key, "log_artifacts", trial_id, config, str(copy), c.COMPRESSED_DIR, True)
        except OSError:
            pass  # evidence only: a missing checkpoint folder must not fail the study


class PeriodicCallback(Callback):
    """Calls `action()` every `every_s` seconds of a running study (a live dashboard's refresh),
    from the tuning loop; an action that fails is skipped, never a reason to stop the study."""

    def __init__(self, action: Any, every_s: float) -> None:
        self.action, self.every_s = action, every_s
        self.next = time.monotonic() + every_s

    def __getstate__(self) -> dict[str, Any]:
        return {"every_s": self.every_s}  # the action is the driver's; a restored study gets a new one

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.action, self.every_s, self.next = None, state["every_s"], time.monotonic() + state["every_s"]

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self.action is None or time.monotonic() < self.next:
            return
        try:
            self.action()
        except Exception:
            pass
        self.next = time.monotonic() + self.every_s


class SchedulerStateCallback(Callback):
    """Saves the trial scheduler's bookkeeping (ASHA's rung records, HyperBand's and BOHB's
    brackets) with each save of the experiment's state, and restores it when `harness resume`
    restores the experiment.

    Ray Tune saves and restores the searcher's state but not the scheduler's, so a resumed
    ASHA study would otherwise start with empty rungs and judge the trials that continue
    against each other only (and a HyperBand one stall: `harness.search.resumable_hyperband`).
    Ray restores callback state before it requeues the trials, and the callback and the
    scheduler are pickled together with the Tuner, so the scheduler this callback holds after
    a restore is the one Ray Tune runs. A scheduler that holds trial objects saves and restores
    itself (`saved_state()`, `restore_state()`); ASHA's records are keyed by trial id already.
    """

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict[str, Any] | None:
        saved = getattr(self.scheduler, "saved_state", None)
        return {"scheduler": saved() if saved else dict(vars(self.scheduler))}

    def set_state(self, state: dict[str, Any]) -> None:
        restore = getattr(self.scheduler, "restore_state", None)
        if restore is not None:
            restore(state["scheduler"])
        else:
            vars(self.scheduler).update(state["scheduler"])


class CheckpointPruner(Callback):
    """Deletes a trial's older checkpoints once no saved experiment state can name them.

    Ray Tune's own `num_to_keep` deletes a trial's previous checkpoint as soon as a new one
    arrives and saves the experiment state (which names the checkpoint each trial resumes
    from) only at the end of that loop step, then copies it to storage in the background: a
    driver killed in between leaves a state naming a deleted checkpoint, and that trial fails
    on resume. Here a checkpoint is deleted only when it is older than the one every trial had
    `LAG` saves ago (`get_state` runs inside every save, after the trial states are written),
    so the state on storage, whichever of the recent saves it is, names a kept checkpoint.
    """

    LAG = 2

    def __init__(self) -> None:
        self.latest: dict[str, str] = {}
        self.saves: list[dict[str, str]] = []

    def on_checkpoint(self, iteration: int, trials: list[Trial], trial: Trial, checkpoint: Any, **info: Any) -> None:
        self.latest[trial.trial_id] = checkpoint.path

    def get_state(self) -> None:
        self.saves.append(dict(self.latest))
        if len(self.saves) > self.LAG:
            for path in self.saves.pop(0).values():
                delete_older_checkpoints(Path(path))
        return None  # nothing to save: after a restore, pruning starts again from new saves


def delete_older_checkpoints(keep: Path) -> None:
    """Delete the checkpoints of `keep`'s trial that Ray Tune wrote before `keep`."""
    for path in keep.parent.glob("checkpoint_*"):
        if path.name < keep.name and path.is_dir():  # Ray numbers them with zero padding
            shutil.rmtree(path, ignore_errors=True)


ENDED_FILE = "ended_trials.json"


class EndedTrials:
    """Which trials had ended at the end of the last loop step. Updated at every step in time
    proportional to the trials still open, not to all the study's trials (a study of thousands
    would pay that at every step): Ray Tune's trial list only grows, and a trial that has ended
    stays ended within one run of the loop."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self._seen = 0
        self._open: list[Trial] = []

    @property
    def open(self) -> list[Trial]:
        """The trials not ended as of the last update."""
        return self._open

    def update(self, trials: list[Trial]) -> list[Trial]:
        """Take the step's trials; return those that ended since the last step."""
        if len(trials) > self._seen:
            self._open += trials[self._seen :]
            self._seen = len(trials)
        ended = [t for t in self._open if t.is_finished()]
        if ended:
            self.ids.update(t.trial_id for t in ended)
            self._open = [t for t in self._open if t.trial_id not in self.ids]
        return ended


class EndedTrialsCallback(Callback):
    """Writes which trials had ended when the tuning loop stopped, into the study folder.

    Ray Tune's final saved state can be stale: a trial that a scheduler stops while it is
    PAUSED (Hyperband, BOHB, PBT) stays PAUSED there although it ended. Its in-memory state is
    no help after a Ctrl-C either, since Tune then stops the running trials, which marks them
    TERMINATED. The state at the end of the last loop step tells the two apart.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.ended = EndedTrials()

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"])  # type: ignore[misc]

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        self.ended.update(trials)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        if self.folder.is_dir():
            partial = self.folder / f".{ENDED_FILE}.tmp"
            partial.write_text(json.dumps(sorted(self.ended.ids)))
            partial.replace(self.folder / ENDED_FILE)


class ProgressCallback(Callback):
    """The live view of a study: progress (finished trials of the total, or the budget spent),
    elapsed time and an estimate of the rest, the best value with its trial's parameters, the
    counts by state, and the running trials with their epoch and metric.

    On a terminal it is redrawn in place (at most four times a second); otherwise (CI logs,
    pipes) it prints one line per trial that ends. Trials that Ray Tune stops because the
    driver was interrupted are counted as interrupted, not as stopped early.
    """

    def __init__(
        self,
        metric: str,
        mode: str,
        max_epochs: int,
        total: int,
        budget_epochs: int | None = None,
        budget_seconds: float | None = None,
    ) -> None:
        self.metric, self.mode, self.max_epochs, self.total = metric, mode, max_epochs, total
        self.budget_epochs, self.budget_seconds = budget_epochs, budget_seconds
        self._live: Any = None
        self._last_draw = 0.0
        self._start: float | None = None
        self._tracker = EndedTrials()
        self._ended: set[str] = self._tracker.ids  # trials that had ended at the end of the last loop step
        # Each trial's latest (epoch, metric value), kept from its results: Ray's `last_result`
        # property copies the result at every read, and the view reads every trial often.
        self._last: dict[str, tuple[int, Any]] = {}
        # Tallies of the ended trials, taken once as each ends (`_sync`): what the view shows is
        # then computed from them and the trials still open, never by reading every trial.
        self._ended_counts = {"done": 0, "stopped early": 0, "failed": 0}
        self._ended_epochs = 0
        self._best_ended: tuple[float, Trial] | None = None
        self._unreported: list[Trial] = []

    def __getstate__(self) -> dict[str, Any]:
        keys = ("metric", "mode", "max_epochs", "total", "budget_epochs", "budget_seconds")
        return {key: getattr(self, key) for key in keys}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # --- what is shown --------------------------------------------------------------------

    def elapsed(self) -> float:
        if self._start is None:
            self._start = time.monotonic()
        return time.monotonic() - self._start

    def latest(self, trial: Trial) -> tuple[int, Any]:
        """(epoch, metric value) of the trial's latest result (0, None before its first)."""
        known = self._last.get(trial.trial_id)
        if known is None:
            result = trial.last_result or {}
            known = (int(result.get(c.EPOCH, 0)), result.get(self.metric))
            if result:  # a trial restored with results; one still pending is read again later
                self._last[trial.trial_id] = known
        return known

    def _sync(self, trials: list[Trial]) -> None:
        """Take the trials that ended since the last call into the tallies. Its time grows with
        the trials still open, not with the study's: a 2,000-trial study whose view read every
        trial for each line it printed spent 2.9 s of its driver's time on the view."""
        for trial in self._tracker.update(trials):
            epochs, value = self.latest(trial)
            if trial.status == Trial.ERROR:
                self._ended_counts["failed"] += 1
            else:
                self._ended_counts["done" if epochs >= self.max_epochs else "stopped early"] += 1
            self._ended_epochs += epochs
            if self._better(value, self._best_ended[0] if self._best_ended else None):
                self._best_ended = (float(value), trial)
            self._unreported.append(trial)

    def _better(self, value: Any, than: float | None) -> bool:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return than is None or (value < than if self.mode == "min" else value > than)

    def best(self, trials: list[Trial]) -> tuple[float | None, Trial | None]:
        """The best latest value of any trial, and its trial: the best of the ended trials
        (tallied as each ended) against the latest of those still open."""
        self._sync(trials)
        best, best_trial = self._best_ended or (None, None)
        for trial in self._tracker.open:
            value = self.latest(trial)[1]
            if self._better(value, best):
                best, best_trial = float(value), trial
        return best, best_trial

    def counts(self, trials: list[Trial], final: bool = False) -> dict[str, int]:
        """Trials by state; with `final`, trials that ended only when the driver stopped the
        loop (a Ctrl-C, SIGTERM) count as interrupted (a scan of every trial, once)."""
        if not final:
            self._sync(trials)
            counts = {**self._ended_counts, "running": 0, "pending": 0}
            for trial in self._tracker.open:
                counts["running" if trial.status == Trial.RUNNING else "pending"] += 1
            return counts
        counts = {"done": 0, "stopped early": 0, "failed": 0, "running": 0, "pending": 0}
        for trial in trials:
            if trial.status == Trial.TERMINATED:
                if final and trial.trial_id not in self._ended:
                    counts["interrupted"] = counts.get("interrupted", 0) + 1
                else:
                    counts["done" if self.latest(trial)[0] >= self.max_epochs else "stopped early"] += 1
            elif trial.status == Trial.ERROR:
                counts["failed"] += 1
            elif trial.status == Trial.RUNNING:
                counts["running"] += 1
            else:
                counts["pending"] += 1
        return counts

    def progress(self, trials: list[Trial]) -> tuple[float, float, str]:
        """(spent, of, unit): epochs or seconds of the study's budget, else finished trials."""
        if self.budget_seconds is not None:
            return min(self.elapsed(), self.budget_seconds), self.budget_seconds, "s"
        self._sync(trials)
        if self.budget_epochs is not None:
            spent = self._ended_epochs + sum(self.latest(t)[0] for t in self._tracker.open)
            return float(spent), float(self.budget_epochs), "epochs"
        return float(len(self._tracker.ids)), float(self.total), "trials"

    def eta(self, spent: float, of: float) -> float | None:
        """Seconds left at the pace so far; None before anything is done."""
        if spent <= 0 or of <= 0:
            return None
        return max(0.0, self.elapsed() * (of - spent) / spent)

    def params(self, trial: Trial | None) -> str:
        if trial is None:
            return ""
        return ", ".join(f"{key}={_short(value)}" for key, value in trial.config.items())

    def headline(self, trials: list[Trial], final: bool = False) -> str:
        spent, of, unit = self.progress(trials)
        eta = None if final else self.eta(spent, of)
        best, best_trial = self.best(trials)
        parts = [
            f"{unit} {spent:.0f}/{of:.0f}" if unit != "s" else f"{spent:.0f}/{of:.0f} s",
            f"elapsed {_clock(self.elapsed())}",
        ]
        if eta is not None:
            parts.append(f"ETA {_clock(eta)}")
        if best is not None:
            parts.append(f"best {self.metric} {best:.4f} ({self.params(best_trial)})")
        return " | ".join(parts)

    def _render(self, trials: list[Trial], final: bool = False) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        # Counts first: the final count tells the trials an interruption stopped from those that
        # had ended, which the tallies below (`progress`, `best`) would take in as ended.
        counts = self.counts(trials, final)
        spent, of, _ = self.progress(trials)
        running = [t for t in (trials if final else self._tracker.open) if t.status == Trial.RUNNING]
        table = Table(show_header=True, box=None, pad_edge=False)
        for column in ("running trial", "epoch", self.metric, "params"):
            table.add_column(column)
        for trial in running:
            value = self.latest(trial)[1]
            table.add_row(
                trial.trial_id, f"{self.latest(trial)[0]}/{self.max_epochs}",
                "-" if not isinstance(value, (int, float)) else f"{value:.4f}", self.params(trial),
            )
        parts: list[Any] = [
            ProgressBar(total=max(of, 1.0), completed=min(spent, of), width=40),
            Text(self.headline(trials, final)),
            Text(", ".join(f"{key} {value}" for key, value in counts.items())),
        ]
        if running:
            parts.append(table)
        return Group(*parts)

    # --- Ray Tune hooks -------------------------------------------------------------------

    def setup(self, **info: Any) -> None:
        self._start = time.monotonic()

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        self._last[trial.trial_id] = (int(result.get(c.EPOCH, 0)), result.get(self.metric))

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        self._sync(trials)
        ended_now, self._unreported = self._unreported, []
        if sys.stdout.isatty():
            now = time.monotonic()
            if now - self._last_draw < 0.25:
                return
            self._last_draw = now
            if self._live is None:
                from rich.live import Live

                self._live = Live(self._render(trials), refresh_per_second=4, transient=False)
                self._live.start()
            self._live.update(self._render(trials))
            return
        for trial in ended_now:
            epochs, value = self.latest(trial)
            shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
            spent, of, unit = self.progress(trials)
            counts = self.counts(trials)
            print(
                f"[{unit} {spent:.0f}/{of:.0f}] trial {trial.trial_id} "
                f"{'failed' if trial.status == Trial.ERROR else 'ended'} after {epochs} epochs "
                f"({self.metric} {shown}); " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
                + f"; {self.headline(trials)}",
                flush=True,
            )

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        if self._live is not None:
            self._live.update(self._render(trials, final=True))
            self._live.stop()
            self._live = None
        else:
            counts = self.counts(trials, final=True)
            if counts.get("interrupted"):
                print(f"interrupted: {counts['interrupted']} running trial(s) stopped; `harness resume` continues them",
                      flush=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
