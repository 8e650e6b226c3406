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

from harness.errors import SpecError
from harness.paths import default_storage, default_tracking_uri
from harness.run.cluster import init_ray
from harness.run.finalize import StudyOutcome, finalize
from harness.run.plan import StudyPlan
from harness.run.tuner import build_tuner, make_trainable
from harness.study import StudySpec
from harness.tracking import contract as c
from harness.tracking.runs import StudyRun, client_for, finish_study_run, reopen_study_run, start_study_run

STATE_FILE = "harness_study.json"


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
) -> StudyOutcome:
    """Execute a validated study from scratch; `announce(folder)` learns where its state is
    saved (what `harness resume` takes) as soon as that folder exists. `parent_run_id` and
    `run_tags` nest the execution's run under another (a comparison) and tag it."""
    tracking_uri = tracking_uri or default_tracking_uri()
    storage = Path(storage or default_storage()).resolve()
    plan = StudyPlan.of(spec)
    init_ray(address)  # before any MLflow run: a bad address must leave nothing behind
    study = start_study_run(
        spec, tracking_uri, spec.search.strategy, plan.kind_name, parent_run_id=parent_run_id, extra_tags=run_tags
    )
    name = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{study.parent_run_id[:8]}"
    path = storage / name
    path.mkdir(parents=True, exist_ok=True)
    (path / STATE_FILE).write_text(json.dumps({"spec": spec.to_dict(), "study": asdict(study)}, indent=2))
    client_for(tracking_uri).set_tag(study.parent_run_id, c.RAY_EXPERIMENT_PATH, str(path))
    if announce is not None:
        announce(path)
    with _closed_on_interrupt(study):
        tuner = build_tuner(plan, study, storage, name, progress)
        results = tuner.fit()
    with _closed_on_interrupt(study):  # a Ctrl-C while reconciling: `harness resume` finishes it
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
    init_ray(address)
    if not tune.Tuner.can_restore(str(path)):
        raise SpecError(f"{path}: Ray Tune saved no state here yet; run the study again instead")
    reopen_study_run(study)
    with _closed_on_interrupt(study):
        tuner = tune.Tuner.restore(
            str(path), trainable=make_trainable(plan), resume_unfinished=True, resume_errored=False
        )
        results = tuner.fit()
    with _closed_on_interrupt(study):
        return finalize(plan, study, path, results)


@contextmanager
def _closed_on_interrupt(study: StudyRun) -> Iterator[None]:
    """Ray Tune turns a first Ctrl-C during `fit` into a clean stop; one that lands before or
    after (while the Tuner is built, or a second Ctrl-C) must not leave the parent RUNNING."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    except KeyboardInterrupt:
        finish_study_run(study, c.KILLED)
        raise
    finally:
        # A fit that ends normally leaves Ray Tune's SIGINT handler in place, which would swallow
        # the next Ctrl-C (during finalize, or a comparison's next study): give the caller's back.
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
