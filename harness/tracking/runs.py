"""Opening and ending MLflow runs: one way to open a run with its provenance tags, one way to
end a run with a status and a reason."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

import harness
from harness.paths import default_artifact_root
from harness.tracking import contract as c

if TYPE_CHECKING:
    from harness.study import StudySpec


def client_for(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def is_local_store(tracking_uri: str) -> bool:
    """A SQLite or file store on this machine (artifacts go under HARNESS_HOME), not a server."""
    return tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri


@functools.cache
def environment_lock() -> str:
    """Installed distributions as `name==version` lines, like `pip freeze` (read once per
    process: about 0.1 s, and what is installed does not change under a running driver)."""
    dists = {
        (d.metadata["Name"] or "").lower(): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    header = f"# python {platform.python_version()} on {platform.platform()}\n"
    return header + "".join(f"{name}=={version}\n" for name, version in sorted(dists.items()))


def git_commit(cwd: Path | None = None) -> str:
    """The commit of the harness's own checkout; `none` when it runs from an installed package
    (then `harness_version` and `source_hash` say what ran)."""
    where = cwd or Path(harness.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    return out.stdout.strip() if out.returncode == 0 else "none"


@functools.cache
def source_hash() -> str:
    """SHA-256 (first 16 hex digits) of the harness's Python sources, `harness`,
    `lightning_modules` and `dashboards`: identifies the code that ran with or without git."""
    digest = hashlib.sha256()
    root = Path(harness.__file__).resolve().parents[1]
    for package in ("harness", "lightning_modules", "dashboards"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


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


def describe_experiment(client: MlflowClient, experiment_id: str, description: str) -> None:
    """The experiment opens in the MLflow UI's model-training view (not the GenAI one) and
    carries the study's description as its note."""
    client.set_experiment_tag(experiment_id, c.EXPERIMENT_KIND, c.EXPERIMENT_KIND_TRAINING)
    if description:
        client.set_experiment_tag(experiment_id, c.NOTE, description)


def open_run(
    tracking_uri: str,
    experiment: str,
    kind: str,
    run_name: str,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
) -> StudyRun:
    """Open a run of `kind` in experiment `experiment` (created if new; artifacts under
    HARNESS_HOME for a local store), tagged with its provenance: kind, git commit, harness
    and Python versions; `parent_run_id` nests it under another run."""
    client = client_for(tracking_uri)
    experiment_id = ensure_experiment(
        client, experiment, default_artifact_root() if is_local_store(tracking_uri) else None
    )
    all_tags = {
        c.KIND: kind,
        c.GIT_COMMIT: git_commit(),
        c.HARNESS_VERSION: harness.__version__,
        c.SOURCE_HASH: source_hash(),
        c.PYTHON: platform.python_version(),
        **(tags or {}),
    }
    if parent_run_id is not None:
        all_tags[c.PARENT_RUN_ID] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    return StudyRun(tracking_uri, experiment_id, run.info.run_id)


def end_tags(status: str, reason: str | None) -> list[RunTag]:
    """The tags a run ends with: its status mirrored (searchable) and, if given, the reason."""
    return [RunTag(c.STATUS, status)] + ([RunTag(c.STOP_REASON, reason[:5000])] if reason is not None else [])


def end_run(client: MlflowClient, run_id: str, status: str, reason: str | None = None, only_if_running: bool = False) -> bool:
    """End a run with `status` (mirrored in the `status` tag) and, if given, the reason; with
    `only_if_running`, a run that has already ended keeps what it has. Returns whether it ended it."""
    if only_if_running and client.get_run(run_id).info.status != c.RUNNING:
        return False
    client.log_batch(run_id, tags=end_tags(status, reason), synchronous=True)  # one store call for both tags
    client.set_terminated(run_id, status=status)
    return True


# MLflow's limits on one log_batch (`mlflow.utils.validation`).
PARAMS_PER_BATCH = 100
TAGS_PER_BATCH = 100
ENTITIES_PER_BATCH = 1000


def log_in_batches(
    client: MlflowClient, run_id: str, params: Sequence[Param] = (), metrics: Sequence[Metric] = (), tags: Sequence[RunTag] = ()
) -> int:
    """Log params, metrics and tags together in as few `log_batch` calls as MLflow's limits
    allow (each call is one store transaction); returns how many calls it made."""
    params, metrics, tags = list(params), list(metrics), list(tags)
    calls = 0
    while params or metrics or tags:
        batch_params, params = params[:PARAMS_PER_BATCH], params[PARAMS_PER_BATCH:]
        batch_tags, tags = tags[:TAGS_PER_BATCH], tags[TAGS_PER_BATCH:]
        room = ENTITIES_PER_BATCH - len(batch_params) - len(batch_tags)
        batch_metrics, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags, synchronous=True)
        calls += 1
    return calls


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def start_study_run(
    spec: StudySpec,
    tracking_uri: str,
    strategy: str,
    trial_kind: str,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> StudyRun:
    """Open the parent run of one execution of `spec`: provenance, flattened params, the
    resolved spec and the environment lock; `parent_run_id` nests it under another run (a
    comparison's), `extra_tags` add or override tags."""
    tags = {
        c.STRATEGY: strategy,
        c.SEED: str(spec.seed),
        c.SPEC_HASH: spec.spec_hash(),
        c.TRIAL_KIND: trial_kind,
        **(extra_tags or {}),
    }
    study = open_run(
        tracking_uri, spec.name, c.KIND_STUDY, f"{tags[c.STRATEGY]}-seed{spec.seed}-{stamp()}", tags, parent_run_id
    )
    client = client_for(tracking_uri)
    try:
        describe_experiment(client, study.experiment_id, spec.description)
        params = [Param(k, str(v)[:6000]) for k, v in flatten(spec.to_dict()).items() if not k.startswith("search.space")]
        log_in_batches(client, study.parent_run_id, params=params)  # a store call per batch, not per param
        client.log_text(study.parent_run_id, spec.to_yaml(), c.SPEC_ARTIFACT)
        client.log_text(study.parent_run_id, environment_lock(), c.ENVIRONMENT_ARTIFACT)
    except BaseException as exc:  # a Ctrl-C or SIGTERM while it is being filled in
        finish_study_run(study, c.KILLED if isinstance(exc, KeyboardInterrupt) else c.FAILED)
        raise
    return study


def finish_study_run(study: StudyRun, status: str = c.FINISHED) -> None:
    client_for(study.tracking_uri).set_terminated(study.parent_run_id, status=status)


def reopen_study_run(study: StudyRun) -> None:
    client_for(study.tracking_uri).update_run(study.parent_run_id, status=c.RUNNING)
