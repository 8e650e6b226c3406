"""Trial (child) runs: one per Ray Tune trial, created, fed and closed by the driver.

Only the driver writes to MLflow: trials report to Ray Tune and the run layer's callback turns
those reports into child runs. One writer keeps a SQLite store safe and lets trials run on
cluster nodes that cannot reach the tracking server.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from harness.tracking import contract as c
from harness.tracking.runs import StudyRun, client_for, end_run, end_tags, log_in_batches


class TrialSpecs(Protocol):
    """What the child runs need to know of a study: a trial's resolved spec as YAML and its
    epoch count, from its sampled values by dotted path."""

    def trial_yaml(self, config: dict[str, Any]) -> str: ...

    def trial_max_epochs(self, config: dict[str, Any]) -> int: ...


def trial_outcome(
    epochs: int, max_epochs: int, error: str | None, scheduler: str, early_stop: str | None = None
) -> tuple[str, str]:
    """(MLflow status, stop reason) of a trial that is no longer running; a trial that stopped
    itself (early stopping) ended as configured: FINISHED, with its reason."""
    if error:
        return c.FAILED, error
    if early_stop:
        return c.FINISHED, early_stop
    if epochs >= max_epochs:
        return c.FINISHED, f"completed {epochs}/{max_epochs} epochs"
    if epochs == 0:
        return c.KILLED, "stopped before its first epoch"
    return c.KILLED, f"stopped early by the {scheduler} scheduler after {epochs}/{max_epochs} epochs"


def error_reason(text: str | None) -> str:
    """The last meaningful line of a trial's traceback, e.g. `NonFiniteLossError: ...`."""
    if not text:
        return "trial raised an error"
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "trial raised an error")[:500]


def numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The per-epoch metrics a trial reports (`split/name` keys and `lr`), finite or not."""
    return {
        key: float(value)
        for key, value in result.items()
        if c.is_epoch_metric(key) and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


@dataclass
class Held:
    """A run's params, metrics and tags not yet written (see `ChildRuns.hold`)."""

    params: list[Param] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    tags: dict[str, RunTag] = field(default_factory=dict)


class ChildRuns:
    """Creates, feeds and closes the child runs of one parent run; idempotent, so that a
    resumed study continues each trial's run instead of opening a second one.

    With `hold`, a run's params, epoch metrics and tags are kept until `send_held()` or the
    run's close, and then go out in one `log_batch`: a short trial's run is three store calls
    (create, one batch, terminate) instead of one per kind of write. Whoever holds must send
    soon: the MLflow writer process does so within `BATCH_S` and at every flush."""

    def __init__(self, study: StudyRun, specs: TrialSpecs, scheduler: str, hold: bool = False) -> None:
        self.study, self.specs, self.scheduler, self.hold = study, specs, scheduler, hold
        self._held: dict[str, Held] = {}  # run id -> writes not yet made
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}  # trial id -> run id
        self._last_step: dict[str, int] = {}  # run id -> last epoch logged
        self._configs: dict[str, str] = {}  # run id -> configuration last recorded
        self._seen: set[str] = set()  # trials this driver has started or continued
        self._open: set[str] = set()  # runs this instance made RUNNING and has not closed
        self._early_stop: dict[str, str] = {}  # run id -> early-stop reason this instance logged
        self._loaded = False

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into its experiment state; keep only the plain settings.
        return {"study": self.study, "specs": self.specs, "scheduler": self.scheduler}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["study"], state["specs"], state["scheduler"])  # type: ignore[misc]

    def _write(
        self, run_id: str, params: Sequence[Param] = (), metrics: Sequence[Metric] = (), tags: Sequence[RunTag] = ()
    ) -> None:
        """Write now, or with `hold` add to what the run holds (a later tag replaces an earlier one)."""
        if not self.hold:
            log_in_batches(self.client, run_id, params, metrics, tags)
            return
        held = self._held.setdefault(run_id, Held())
        held.params += params
        held.metrics += metrics
        held.tags.update((tag.key, tag) for tag in tags)

    def holding(self) -> bool:
        return bool(self._held)

    def send_held(self, run_id: str | None = None) -> None:
        """Write what is held, for one run or all, in as few calls as MLflow's limits allow. A
        run's writes are taken before they are tried: one that fails is dropped (and counted by
        the caller), and finalize writes the epochs it lacks."""
        for key in [run_id] if run_id is not None else list(self._held):
            held = self._held.pop(key, None)
            if held is not None:
                log_in_batches(self.client, key, held.params, held.metrics, list(held.tags.values()))

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = client_for(self.study.tracking_uri)
        return self._client

    def load_existing(self) -> None:
        """Find the child runs already made for this parent (after a driver restart)."""
        if self._loaded:
            return
        self._loaded = True
        runs = self.client.search_runs(
            [self.study.experiment_id],
            filter_string=f"tags.`{c.PARENT_RUN_ID}` = '{self.study.parent_run_id}'",
            max_results=50000,
        )
        for run in runs:
            trial_id = run.data.tags.get(c.TRIAL_ID)
            if trial_id:
                self._runs[trial_id] = run.info.run_id
                self._last_step[run.info.run_id] = int(run.data.metrics.get(c.EPOCH, 0))

    def run_ids(self) -> dict[str, str]:
        self.load_existing()
        return dict(self._runs)

    def ensure(self, trial_id: str, config: dict[str, Any], reopen: bool = False) -> str:
        """The child run of a trial, created with its params and resolved spec if new;
        `reopen` marks an existing one RUNNING again (a trial continued after a restart)."""
        self.load_existing()
        if trial_id in self._runs:
            run_id = self._runs[trial_id]
            if not reopen:
                return run_id
            run = self.client.get_run(run_id)
            recorded = run.data.tags.get(c.CONFIG)
            if trial_id in self._seen or recorded in (None, config_json(config)):
                self._seen.add(trial_id)
                self._configs.setdefault(run_id, recorded or config_json(config))
                if run.info.status != c.RUNNING:
                    self.client.update_run(run_id, status=c.RUNNING)
                    self.client.set_tag(run_id, c.STATUS, c.RUNNING)
                if run.data.tags.get(c.EARLY_STOP):
                    self._early_stop[run_id] = run.data.tags[c.EARLY_STOP]
                self._open.add(run_id)
                return run_id
            # A killed driver started this trial after Ray last saved the study's state; the
            # resumed search drew the same id for a different configuration. Keep the old run
            # as a closed record and give the new trial its own.
            self._retire(trial_id, run_id)
        run = self.client.create_run(
            self.study.experiment_id,
            tags={
                c.PARENT_RUN_ID: self.study.parent_run_id,
                c.RUN_NAME: f"trial-{trial_id}",
                c.KIND: c.KIND_TRIAL,
                c.TRIAL_ID: trial_id,
                c.STATUS: c.RUNNING,
                c.CONFIG: config_json(config),
            },
        )
        run_id = run.info.run_id
        self._runs[trial_id] = run_id
        self._seen.add(trial_id)
        self._configs[run_id] = config_json(config)
        self._last_step[run_id] = 0
        self._open.add(run_id)
        self._write(run_id, params=[_param(k, v) for k, v in config.items()])
        self._log_text(run.info.artifact_uri, self.specs.trial_yaml(config), c.TRIAL_SPEC_ARTIFACT)
        return run_id

    def _log_text(self, artifact_uri: str, text: str, name: str) -> None:
        """`log_text` into a run whose artifact location is known (a new run's), without the
        read of the run MLflow's client makes to find it (a third of a new run's store time)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = get_artifact_repository(artifact_uri, tracking_uri=self.study.tracking_uri)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            path.write_text(text)
            folder = str(Path(name).parent)
            repository.log_artifact(str(path), None if folder == "." else folder)

    def log_epoch(self, trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
        self.log_epochs(trial_id, [(config, result)])

    def log_epochs(
        self, trial_id: str, reports: list[tuple[dict[str, Any], dict[str, Any]]], logged: set[int] | None = None
    ) -> None:
        """Log epoch reports of one trial, each a (configuration, result), in as few store calls
        as MLflow's batch limits allow. Epochs already logged are skipped: those up to the last
        one logged (a run's history is a prefix of the trial's epochs), or, given `logged`, the
        steps it names (a history with gaps, after dropped writes)."""
        if not reports:
            return
        run_id = self.ensure(trial_id, reports[0][0])
        metrics: list[Metric] = []
        tags: dict[str, RunTag] = {}
        last = self._last_step.get(run_id, 0)
        for config, result in reports:
            step = int(result.get(c.EPOCH, result.get("training_iteration", 0)))
            if (step in logged) if logged is not None else step <= last:
                continue
            last = max(last, step)
            now = int(time.time() * 1000)
            metrics += [
                Metric(key, value if math.isfinite(value) else float("nan"), now, step)
                for key, value in numeric_metrics(result).items()
            ]
            metrics.append(Metric(c.EPOCH, float(step), now, step))
            # Where the trial ran (Ray node, torch device): tagged once, from its first epoch.
            for key in (c.NODE_ID, c.DEVICE):
                if key in result and step == 1:
                    tags[key] = RunTag(key, str(result[key]))
            if result.get("stop_reason"):
                tags[c.EARLY_STOP] = RunTag(c.EARLY_STOP, str(result["stop_reason"])[:5000])
                self._early_stop[run_id] = tags[c.EARLY_STOP].value
            current = config_json(config)
            if self._configs.get(run_id, current) != current:
                # PBT changed the trial's hyperparameters: params are immutable in MLflow, so the
                # live configuration is a tag and each numeric value a `config/...` curve.
                tags[c.CONFIG] = RunTag(c.CONFIG, current)
                metrics += [
                    Metric(f"{c.CONFIG_PREFIX}{key}", float(value), now, step)
                    for key, value in config.items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool)
                ]
                self._configs[run_id] = current
        if not metrics:
            return
        self._write(run_id, metrics=metrics, tags=list(tags.values()))
        self._last_step[run_id] = last

    def ensure_history(
        self, trial_id: str, config: dict[str, Any], rows: list[dict[str, Any]], thorough: bool = False
    ) -> None:
        """Log whatever epochs of `rows` the run lacks: the tail a killed driver never logged or,
        `thorough`, any step missing from its history (writes dropped mid-study leave gaps),
        and its params if it has none (a lost first write)."""
        run_id = self.ensure(trial_id, config)
        logged = None
        if thorough:
            logged = {m.step for m in self.client.get_metric_history(run_id, c.EPOCH)}
            if config and not self.client.get_run(run_id).data.params:
                self._write(run_id, params=[_param(k, v) for k, v in config.items()])
        self.log_epochs(trial_id, [(config, row) for row in rows], logged)

    def note_retry(self, trial_id: str, config: dict[str, Any], retries: int, cause: str) -> None:
        """Tag the run of a trial Ray Tune restarts after its worker or node was lost."""
        run_id = self.ensure(trial_id, config)
        self._write(run_id, tags=[RunTag(c.RETRIES, str(retries)), RunTag(c.RETRY_CAUSE, cause[:5000])])

    def suspend(self, trial_id: str, reason: str) -> None:
        """Close the run of a trial the driver left unfinished; a resume reopens it."""
        run_id = self._runs.get(trial_id)
        if run_id is not None:
            self.send_held(run_id)
            end_run(self.client, run_id, c.KILLED, reason, only_if_running=True)
            self._open.discard(run_id)

    def statuses(self) -> dict[str, str]:
        """Trial id -> MLflow status of every trial run of the parent (not its teacher run)."""
        runs = self.client.search_runs(
            [self.study.experiment_id],
            filter_string=f"tags.`{c.PARENT_RUN_ID}` = '{self.study.parent_run_id}' and tags.`{c.KIND}` = '{c.KIND_TRIAL}'",
            max_results=50000,
        )
        return {run.data.tags.get(c.TRIAL_ID, run.info.run_id): run.info.status for run in runs}

    def close(
        self, trial_id: str, config: dict[str, Any], epochs: int, error: str | None, cut_reason: str | None = None
    ) -> str:
        """Record a trial's end: FINISHED, KILLED (stopped early) or FAILED, with the reason;
        `cut_reason` names what stopped an unfinished trial instead of the scheduler (the study's
        budget). A run that is already closed keeps what it has."""
        run_id = self.ensure(trial_id, config)
        if run_id in self._open:  # opened by this instance: its status and tags are known here
            early_stop = self._early_stop.get(run_id)
        else:
            run = self.client.get_run(run_id)
            if run.info.status != c.RUNNING:
                return run.info.status
            early_stop = run.data.tags.get(c.EARLY_STOP)
        max_epochs = self.specs.trial_max_epochs(config)
        error_text = error_reason(error) if error else None
        status, reason = trial_outcome(epochs, max_epochs, error_text, self.scheduler, early_stop)
        if cut_reason and status == c.KILLED:
            reason = f"{cut_reason} after {epochs}/{max_epochs} epochs"
        if error:
            self.client.log_text(run_id, str(error), c.ERROR_ARTIFACT)
        # The closing tags go out with whatever the run still holds, then the status.
        self._write(run_id, tags=end_tags(status, reason))
        self.send_held(run_id)
        self.client.set_terminated(run_id, status=status)
        self._open.discard(run_id)
        return status

    def log_weight_histogram(self, trial_id: str, config: dict[str, Any], histogram: dict[str, list[float]]) -> None:
        """The trial's final weight histogram as JSON (edges, counts) and as a PNG."""
        from harness.tracking.plots import histogram_png  # matplotlib only when a histogram is logged

        run_id = self.ensure(trial_id, config)
        self.client.log_text(run_id, json.dumps(histogram), c.WEIGHTS_HISTOGRAM_JSON)
        if histogram.get("counts"):
            with tempfile.TemporaryDirectory() as tmp:
                png = histogram_png(
                    Path(tmp) / c.WEIGHTS_HISTOGRAM_PNG, histogram["edges"], histogram["counts"],
                    f"trial {trial_id}: weights at the end",
                )
                self.client.log_artifact(run_id, str(png))

    def log_artifacts(self, trial_id: str, config: dict[str, Any], folder: str, path: str, delete: bool = False) -> None:
        """Log the files of `folder` under `path` of the trial's run; with `delete`, remove the
        folder's parent afterwards (a copy made for this call)."""
        try:
            self.client.log_artifacts(self.ensure(trial_id, config), folder, path)
        finally:
            if delete:
                shutil.rmtree(Path(folder).parent, ignore_errors=True)

    def _retire(self, trial_id: str, run_id: str) -> None:
        self.send_held(run_id)
        self.client.set_tag(run_id, c.TRIAL_ID, f"{trial_id}-unrecorded")
        if not end_run(self.client, run_id, c.KILLED, c.ORPHAN_REASON, only_if_running=True):
            # Already ended: it still records why it was set aside.
            self.client.set_tag(run_id, c.STOP_REASON, c.ORPHAN_REASON)
        self._open.discard(run_id)
        del self._runs[trial_id]

    def close_orphans(self, known: set[str]) -> int:
        """Close runs still RUNNING whose trial Ray no longer has; returns how many."""
        closed = 0
        for trial_id, run_id in self.run_ids().items():
            if trial_id in known:
                continue
            closed += end_run(self.client, run_id, c.KILLED, c.ORPHAN_REASON, only_if_running=True)
            self._open.discard(run_id)
        return closed


def config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)[:5000]


def _param(key: str, value: Any) -> Param:
    return Param(key, str(value)[:6000])
