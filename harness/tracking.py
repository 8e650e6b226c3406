"""MLflow layout: experiment = study, parent run = one execution, child run = one trial.

Only the driver writes to MLflow: trials report to Ray Tune and `MlflowTrialCallback` turns
those reports into child runs. One writer keeps a SQLite store safe and lets trials run on
cluster nodes that cannot reach the tracking server.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

import harness
from harness.spec import StudySpec

RUNNING, FINISHED, KILLED, FAILED = "RUNNING", "FINISHED", "KILLED", "FAILED"
TRIAL_SPEC_ARTIFACT = "trial_spec.yaml"
# Tag holding the reason a trial stopped itself early (its report's `stop_reason`).
EARLY_STOP_TAG = "early_stopping"
CONFIG_TAG = "config"  # the trial's current configuration (PBT changes it mid-run)
ORPHAN_REASON = "driver stopped before the study state recorded this trial; it was not resumed"


def client_for(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def environment_lock() -> str:
    """Installed distributions as `name==version` lines, like `pip freeze`."""
    dists = {
        (d.metadata["Name"] or "").lower(): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    header = f"# python {platform.python_version()} on {platform.platform()}\n"
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(dists.items()))


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


@dataclass(frozen=True)
class StudyRun:
    """Where one execution is tracked; saved beside Ray's state so `resume` can find it."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    """The id of experiment `name`, created (artifacts under `artifact_root/name`) or restored."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (artifact_root / name).as_uri() if artifact_root else None
        return client.create_experiment(name, artifact_location=location)
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def start_study_run(
    spec: StudySpec,
    tracking_uri: str,
    strategy: str,
    artifact_root: Path | None,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> StudyRun:
    """Create (or reuse) the study's experiment and open a parent run for this execution;
    `parent_run_id` nests it under another run (a comparison's), `extra_tags` add or override tags."""
    client = client_for(tracking_uri)
    experiment_id = ensure_experiment(client, spec.name, artifact_root)
    tags = {
        "harness.kind": "study",
        "strategy": strategy,
        "seed": str(spec.seed),
        "spec_hash": spec.spec_hash(),
        "git_commit": git_commit(),
        "harness_version": harness.__version__,
        "python": platform.python_version(),
        **(extra_tags or {}),
    }
    if parent_run_id is not None:
        tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    run = client.create_run(
        experiment_id, run_name=f"{tags['strategy']}-seed{spec.seed}-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags
    )
    run_id = run.info.run_id
    params = {k: v for k, v in flatten(spec.to_dict()).items() if not k.startswith("search.space")}
    for key, value in params.items():
        client.log_param(run_id, key, str(value)[:6000])
    client.log_text(run_id, spec.to_yaml(), "spec.yaml")
    client.log_text(run_id, environment_lock(), "environment.txt")
    return StudyRun(tracking_uri, experiment_id, run_id)


def trial_outcome(
    epochs: int, max_epochs: int, error: str | None, scheduler: str, early_stop: str | None = None
) -> tuple[str, str]:
    """(MLflow status, stop reason) of a trial that is no longer running; a trial that stopped
    itself (early stopping) ended as configured: FINISHED, with its reason."""
    if error:
        return FAILED, error
    if early_stop:
        return FINISHED, early_stop
    if epochs >= max_epochs:
        return FINISHED, f"completed {epochs}/{max_epochs} epochs"
    if epochs == 0:
        return KILLED, "stopped before its first epoch"
    return KILLED, f"stopped early by the {scheduler} scheduler after {epochs}/{max_epochs} epochs"


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
        if ("/" in key or key == "lr") and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class ChildRuns:
    """Creates, feeds and closes the child runs of one parent run; idempotent, so that a
    resumed study continues each trial's run instead of opening a second one."""

    def __init__(self, study: StudyRun, base_spec: dict[str, Any], scheduler: str) -> None:
        self.study, self.base_spec, self.scheduler = study, base_spec, scheduler
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}  # trial id -> run id
        self._last_step: dict[str, int] = {}  # run id -> last epoch logged
        self._configs: dict[str, str] = {}  # run id -> configuration last recorded
        self._seen: set[str] = set()  # trials this driver has started or continued
        self._loaded = False

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into its experiment state; keep only the plain settings.
        return {"study": self.study, "base_spec": self.base_spec, "scheduler": self.scheduler}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["study"], state["base_spec"], state["scheduler"])  # type: ignore[misc]

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
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.study.parent_run_id}'",
            max_results=50000,
        )
        for run in runs:
            trial_id = run.data.tags.get("trial_id")
            if trial_id:
                self._runs[trial_id] = run.info.run_id
                self._last_step[run.info.run_id] = int(run.data.metrics.get("epoch", 0))

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
            recorded = run.data.tags.get(CONFIG_TAG)
            if trial_id in self._seen or recorded in (None, config_json(config)):
                self._seen.add(trial_id)
                self._configs.setdefault(run_id, recorded or config_json(config))
                if run.info.status != RUNNING:
                    self.client.update_run(run_id, status=RUNNING)
                    self.client.set_tag(run_id, "status", RUNNING)
                return run_id
            # A killed driver started this trial after Ray last saved the study's state; the
            # resumed search drew the same id for a different configuration. Keep the old run
            # as a closed record and give the new trial its own.
            self._retire(trial_id, run_id)
        run = self.client.create_run(
            self.study.experiment_id,
            tags={
                MLFLOW_PARENT_RUN_ID: self.study.parent_run_id,
                MLFLOW_RUN_NAME: f"trial-{trial_id}",
                "harness.kind": "trial",
                "trial_id": trial_id,
                "status": RUNNING,
                CONFIG_TAG: config_json(config),
            },
        )
        run_id = run.info.run_id
        self._runs[trial_id] = run_id
        self._seen.add(trial_id)
        self._configs[run_id] = config_json(config)
        self._last_step[run_id] = 0
        self.client.log_batch(
            run_id, params=[_param(k, v) for k, v in config.items()], synchronous=True
        )
        resolved = StudySpec.model_validate(self.base_spec).with_values(config)
        self.client.log_text(run_id, resolved.to_yaml(), TRIAL_SPEC_ARTIFACT)
        return run_id

    def log_epoch(self, trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
        run_id = self.ensure(trial_id, config)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        if step <= self._last_step.get(run_id, 0):
            return  # already logged before a driver restart
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value if math.isfinite(value) else float("nan"), now, step)
            for key, value in numeric_metrics(result).items()
        ]
        metrics.append(Metric("epoch", float(step), now, step))
        # Where the trial ran (Ray node, torch device): tagged once, from its first epoch.
        tags = [RunTag(key, str(result[key])) for key in ("node_id", "device") if key in result and step == 1]
        if result.get("stop_reason"):
            tags.append(RunTag(EARLY_STOP_TAG, str(result["stop_reason"])[:5000]))
        current = config_json(config)
        if self._configs.get(run_id, current) != current:
            # PBT changed the trial's hyperparameters: params are immutable in MLflow, so the
            # live configuration is a tag and each numeric value a `config/...` curve.
            tags.append(RunTag(CONFIG_TAG, current))
            metrics += [
                Metric(f"config/{key}", float(value), now, step)
                for key, value in config.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            ]
            self._configs[run_id] = current
        self.client.log_batch(run_id, metrics=metrics, tags=tags, synchronous=True)
        self._last_step[run_id] = step

    def ensure_history(self, trial_id: str, config: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Log whatever epochs of `rows` the run lacks (events a killed driver never saw)."""
        self.ensure(trial_id, config)
        for row in rows:
            self.log_epoch(trial_id, config, row)

    def suspend(self, trial_id: str, reason: str) -> None:
        """Close the run of a trial the driver left unfinished; a resume reopens it."""
        run_id = self._runs.get(trial_id)
        if run_id is None or self.client.get_run(run_id).info.status != RUNNING:
            return
        self.client.set_tag(run_id, "status", KILLED)
        self.client.set_tag(run_id, "stop_reason", reason)
        self.client.set_terminated(run_id, status=KILLED)

    def statuses(self) -> dict[str, str]:
        """Trial id -> MLflow status of every child run of the parent."""
        runs = self.client.search_runs(
            [self.study.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.study.parent_run_id}'",
            max_results=50000,
        )
        return {run.data.tags.get("trial_id", run.info.run_id): run.info.status for run in runs}

    def close(
        self, trial_id: str, config: dict[str, Any], epochs: int, error: str | None, cut_reason: str | None = None
    ) -> str:
        """Record a trial's end: FINISHED, KILLED (stopped early) or FAILED, with the reason;
        `cut_reason` names what stopped an unfinished trial instead of the scheduler (the study's
        budget). A run that is already closed keeps what it has."""
        run_id = self.ensure(trial_id, config)
        run = self.client.get_run(run_id)
        current = run.info.status
        if current != RUNNING:
            return current
        max_epochs = int(config.get("train.max_epochs", self.base_spec["train"]["max_epochs"]))
        error_text = error_reason(error) if error else None
        early_stop = run.data.tags.get(EARLY_STOP_TAG)
        status, reason = trial_outcome(epochs, max_epochs, error_text, self.scheduler, early_stop)
        if cut_reason and status == KILLED:
            reason = f"{cut_reason} after {epochs}/{max_epochs} epochs"
        self.client.set_tag(run_id, "status", status)
        self.client.set_tag(run_id, "stop_reason", reason)
        if error:
            self.client.log_text(run_id, str(error), "error.txt")
        self.client.set_terminated(run_id, status=status)
        return status

    def log_weight_histogram(self, trial_id: str, config: dict[str, Any], histogram: dict[str, list[float]]) -> None:
        """The trial's final weight histogram as JSON (edges, counts) and as a PNG."""
        from harness.plots import histogram_png  # matplotlib only when a histogram is logged

        run_id = self.ensure(trial_id, config)
        self.client.log_text(run_id, json.dumps(histogram), "weights_histogram.json")
        if histogram.get("counts"):
            with tempfile.TemporaryDirectory() as tmp:
                png = histogram_png(
                    Path(tmp) / "weights_histogram.png", histogram["edges"], histogram["counts"],
                    f"trial {trial_id}: weights at the end",
                )
                self.client.log_artifact(run_id, str(png))

    def _retire(self, trial_id: str, run_id: str) -> None:
        self.client.set_tag(run_id, "trial_id", f"{trial_id}-unrecorded")
        self.client.set_tag(run_id, "status", KILLED)
        self.client.set_tag(run_id, "stop_reason", ORPHAN_REASON)
        if self.client.get_run(run_id).info.status == RUNNING:
            self.client.set_terminated(run_id, status=KILLED)
        del self._runs[trial_id]

    def close_orphans(self, known: set[str]) -> int:
        """Close runs still RUNNING whose trial Ray no longer has; returns how many."""
        closed = 0
        for trial_id, run_id in self.run_ids().items():
            if trial_id in known:
                continue
            if self.client.get_run(run_id).info.status == RUNNING:
                self.client.set_tag(run_id, "stop_reason", ORPHAN_REASON)
                self.client.set_tag(run_id, "status", KILLED)
                self.client.set_terminated(run_id, status=KILLED)
                closed += 1
        return closed


def config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)[:5000]


def _param(key: str, value: Any) -> Param:
    return Param(key, str(value)[:6000])


def finish_study_run(study: StudyRun, status: str = FINISHED) -> None:
    client_for(study.tracking_uri).set_terminated(study.parent_run_id, status=status)


def reopen_study_run(study: StudyRun) -> None:
    client_for(study.tracking_uri).update_run(study.parent_run_id, status=RUNNING)

