"""Runs a study: Ray (local or `--address`), a Tuner built from the study's plan, MLflow
tracking, then one evaluation of the chosen configuration. Resumable after any stop."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from harness.compress.teacher import check_teacher_run, prepare_trials
from harness.errors import SpecError
from harness.paths import default_storage, default_tracking_uri
from harness.run.cluster import check_resources, init_ray
from harness.run.finalize import StudyOutcome, finalize
from harness.run.plan import StudyPlan
from harness.run.tuner import build_tuner, make_trainable
from harness.study import StudySpec
from harness.tracking import contract as c
from harness.tracking import writer as writes
from harness.tracking.runs import StudyRun, client_for, finish_study_run, reopen_study_run, start_study_run
from harness.tracking.store import check_store, check_writable
from harness.tracking.trials import ChildRuns

STATE_FILE = "harness_study.json"
CLOSE_FLUSH_S = 60.0  # an exit waits this long at most for queued writes (the store may be gone)


def run_study(
    spec: StudySpec,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | Path | None = None,
    progress: bool = True,
    announce: Callable[[Path], None] | None = None,
    parent_run_id: str | None = None,
    run_tags: dict[str, str] | None = None,
    refresh: Callable[[StudyRun], None] | None = None,
) -> StudyOutcome:
    """Execute a validated study from scratch; `announce(folder)` learns where its state is
    saved (what `harness resume` takes) as soon as that folder exists. `parent_run_id` and
    `run_tags` nest the execution's run under another (a comparison) and tag it; `refresh(study)`
    runs every minute while trials run (the CLI rebuilds the live dashboard with it)."""
    tracking_uri = tracking_uri or default_tracking_uri()
    storage = Path(storage or default_storage()).resolve()
    plan = StudyPlan.of(spec)
    # Everything that can be checked is checked before any MLflow run exists: the store and the
    # storage folder (before Ray starts, seconds), then the cluster and what a trial asks of it.
    check_store(tracking_uri, create=False)
    check_writable(storage, "--storage")
    check_teacher_run(spec, tracking_uri)
    init_ray(address)
    check_resources(spec.resources.cpus_per_trial, spec.resources.gpus_per_trial)
    check_store(tracking_uri)  # a new local store is created now, once every check has passed
    study = start_study_run(
        spec, tracking_uri, spec.search.strategy, plan.kind_name, parent_run_id=parent_run_id, extra_tags=run_tags
    )
    with _closed_on_exit(study, plan):  # every way out closes what was opened
        name = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{study.parent_run_id[:8]}"
        path = storage / name
        path.mkdir(parents=True, exist_ok=True)
        (path / STATE_FILE).write_text(json.dumps({"spec": spec.to_dict(), "study": asdict(study)}, indent=2))
        client_for(tracking_uri).set_tag(study.parent_run_id, c.RAY_EXPERIMENT_PATH, str(path))
        if announce is not None:
            announce(path)
        prepared = prepare_trials(spec, study, path)  # a compression study's teacher, once
        action = None if refresh is None else (lambda: refresh(study))
        tuner = build_tuner(plan, study, storage, name, progress, prepared, action)
        results = tuner.fit()
        writes.flush()  # every queued MLflow write is made before finalize reads the runs
    with _closed_on_exit(study, plan):  # a Ctrl-C while reconciling: `harness resume` finishes it
        return finalize(plan, study, path, results)


def resume_study(path: str | Path, *, address: str | None = None) -> StudyOutcome:
    """Continue an execution whose driver died: finished trials stay finished, unfinished
    ones continue from their last checkpoint, searcher and scheduler state included."""
    from ray import tune

    path = Path(path).resolve()
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise SpecError(f"{path}: not a study folder (no {STATE_FILE}); give the folder `harness run` printed")
    state = json.loads(state_file.read_text())
    plan = StudyPlan.of(StudySpec.model_validate(state["spec"]))
    study = StudyRun(**state["study"])
    check_store(study.tracking_uri)
    init_ray(address)
    if not restorable(path):
        raise SpecError(f"{path}: Ray Tune saved no state here yet; run the study again instead")
    check_resources(plan.spec.resources.cpus_per_trial, plan.spec.resources.gpus_per_trial)
    reopen_study_run(study)
    with _closed_on_exit(study, plan):
        tuner = tune.Tuner.restore(
            str(path), trainable=make_trainable(plan, prepare_trials(plan.spec, study, path)),
            resume_unfinished=True, resume_errored=False,
        )
        results = tuner.fit()
        writes.flush()
    with _closed_on_exit(study, plan):
        return finalize(plan, study, path, results, resumed=True)


def restorable(path: Path) -> bool:
    """Whether Ray Tune saved a state in `path` to continue from: its Tuner file is written at
    the start, the experiment state only at its first save, and a driver killed in between
    leaves a folder that `Tuner.restore` cannot continue (it would start over with one trial)."""
    from ray import tune

    return path.is_dir() and tune.Tuner.can_restore(str(path)) and any(path.glob("experiment_state-*.json"))


@contextmanager
def _closed_on_exit(study: StudyRun, plan: StudyPlan) -> Iterator[None]:
    """Whatever ends the block early closes the parent run and its still-running child runs:
    KILLED for an interruption (Ray Tune turns a first Ctrl-C during `fit` into a clean stop;
    one that lands before or after, or a second one, raises here), FAILED with the error for
    anything else (a folder that cannot be written, a store that went away). Nothing is left
    RUNNING; `harness resume` reopens what it continues."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        _close_all(study, plan, c.KILLED if interrupted else c.FAILED, None if interrupted else exc)
        raise
    finally:
        # A fit that ends normally leaves Ray Tune's SIGINT handler in place, which would swallow
        # the next Ctrl-C (during finalize, or a comparison's next study): give the caller's back.
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


def _close_all(study: StudyRun, plan: StudyPlan, status: str, error: BaseException | None) -> None:
    client = client_for(study.tracking_uri)
    try:
        writes.flush(CLOSE_FLUSH_S)  # what the search queued, before its runs are closed
        runs = ChildRuns(study, plan, plan.scheduler_name)
        for trial_id in runs.run_ids():
            runs.suspend(trial_id, c.INTERRUPTED_REASON)
        if error is not None:
            client.set_tag(study.parent_run_id, c.STOP_REASON, f"{type(error).__name__}: {error}"[:5000])
        finish_study_run(study, status)
    except Exception:  # the store itself may be what failed: the original error matters more
        pass
