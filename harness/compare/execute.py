"""`harness compare`: one base study under several strategies and seeds, on one budget.

Each (strategy, seed) is one study execution whose MLflow run is nested under the comparison's
run. Executions run several at once, each in a driver process of its own on the one Ray cluster
(`harness.run.pool`), as many as `parallel` says (by default as many as the cluster's CPUs keep
busy); with one at a time they run in this process, one after another. A state file in the
comparison folder records each execution's study folder and status, so that `harness resume
FOLDER` continues the whole comparison. The report is built by the caller (the CLI) from what
MLflow stored.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.compare.spec import ComparisonSpec, optimum_of
from harness.errors import SpecError
from harness.paths import default_tracking_uri, harness_home
from harness.run.cluster import init_ray
from harness.run.execute import STATE_FILE as STUDY_STATE_FILE
from harness.run.execute import restorable, resume_study, run_study
from harness.run.pool import ANNOUNCED, Job, JobResult, auto_parallel, read_json, run_jobs
from harness.study.reading import read_yaml_mapping
from harness.tracking import contract as c
from harness.tracking.runs import StudyRun, client_for, end_run, finish_study_run, open_run, reopen_study_run
from harness.tracking.store import check_store, check_writable

STATE_FILE = "harness_comparison.json"
PENDING, RUNNING, INTERRUPTED, FINISHED = "pending", "running", "interrupted", "finished"


# --- state ---------------------------------------------------------------------------------


@dataclass
class Execution:
    """One (strategy, seed) study execution and where it stands."""

    strategy: str
    seed: int
    status: str = PENDING
    folder: str | None = None  # the study folder, once it exists (what `harness resume` takes)
    run_id: str | None = None  # its MLflow parent run


@dataclass
class ComparisonState:
    """What `harness resume FOLDER` needs: the resolved spec and every execution's progress."""

    spec: dict[str, Any]
    tracking_uri: str
    experiment_id: str
    run_id: str  # the comparison's MLflow run; its id is the comparison_id tag
    executions: list[Execution]
    reported: bool = False

    def save(self, folder: Path) -> None:
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(folder / STATE_FILE)  # atomic: a killed driver leaves the old or the new

    @classmethod
    def load(cls, folder: Path) -> ComparisonState:
        raw = json.loads((folder / STATE_FILE).read_text())
        raw["executions"] = [Execution(**e) for e in raw["executions"]]
        return cls(**raw)


def is_comparison_file(path: str | Path) -> bool:
    """Whether a YAML file reads as a comparison (it lists strategies and names a study)."""
    try:
        raw = read_yaml_mapping(Path(path), "study or comparison file")
    except SpecError:
        return False  # loading it as a study reports what is wrong
    return "strategies" in raw and "study" in raw


def is_comparison_folder(path: str | Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


# --- running -------------------------------------------------------------------------------


@dataclass
class ComparisonOutcome:
    """Where a comparison stands after `run_comparison` / `resume_comparison`, for the report."""

    folder: Path
    spec: ComparisonSpec
    tracking_uri: str
    experiment_id: str
    run_id: str
    metric: str
    mode: str
    optimum: float | None
    executions: list[Execution]
    ran: int = 0  # executions run or continued by this call
    objectives: list[tuple[str, str]] = field(default_factory=list)  # a multi-objective base study's
    reference: dict[str, float] | None = None
    interrupted: bool = False
    already_reported: bool = False

    @property
    def comparison_id(self) -> str:
        return self.run_id


# The caller's report: reads MLflow, writes files into the folder it is given, prints; returns
# the files and summary metrics to log on the comparison's run.
Report = Callable[[ComparisonOutcome, Path], tuple[list[Path], dict[str, float]]]


def _start_comparison_run(spec: ComparisonSpec, tracking_uri: str) -> tuple[str, str]:
    tags = {c.BUDGET: spec.budget.label(), c.BASELINE: spec.baseline}
    run = open_run(tracking_uri, spec.name, c.KIND_COMPARISON, f"comparison-{time.strftime('%Y%m%d-%H%M%S')}", tags)
    experiment_id, run_id = run.experiment_id, run.parent_run_id
    client = client_for(tracking_uri)
    client.set_tag(run_id, c.COMPARISON_ID, run_id)
    params = {
        "strategies": ",".join(spec.strategies),
        "seeds": ",".join(map(str, spec.seed_list())),
        "base_study": spec.base_study().get("name"),
        f"budget.{spec.budget.axis}": getattr(spec.budget, spec.budget.axis),
        "baseline": spec.baseline,
        "target": spec.target,
    }
    for key, value in params.items():
        client.log_param(run_id, key, str(value))
    client.log_text(run_id, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), c.COMPARISON_SPEC_ARTIFACT)
    return experiment_id, run_id


def run_comparison(
    spec: ComparisonSpec,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | Path | None = None,
    progress: bool = True,
    announce: Callable[[Path], None] | None = None,
    report: Report | None = None,
) -> ComparisonOutcome:
    """Run every (strategy, seed) of a validated comparison, then `report` it; `announce(folder)`
    learns the comparison folder (what `harness resume` takes) as soon as it exists."""
    tracking_uri = tracking_uri or default_tracking_uri()
    root = Path(storage).resolve() if storage else harness_home() / "compare"
    check_store(tracking_uri, create=False)  # before Ray and before any MLflow run, as for a study
    check_writable(root, "--storage")
    init_ray(address)
    check_store(tracking_uri)
    experiment_id, run_id = _start_comparison_run(spec, tracking_uri)
    try:
        folder = root / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{run_id[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        executions = [Execution(strategy, seed) for strategy in spec.strategies for seed in spec.seed_list()]
        state = ComparisonState(spec.model_dump(mode="json"), tracking_uri, experiment_id, run_id, executions)
        state.save(folder)
        client_for(tracking_uri).set_tag(run_id, c.COMPARISON_FOLDER, str(folder))
    except BaseException as exc:
        status = c.KILLED if isinstance(exc, KeyboardInterrupt) else c.FAILED
        finish_study_run(StudyRun(tracking_uri, experiment_id, run_id), status)
        raise
    if announce is not None:
        announce(folder)
    return _continue(folder, state, address=address, progress=progress, report=report)


def resume_comparison(
    path: str | Path, *, address: str | None = None, progress: bool = True, report: Report | None = None
) -> ComparisonOutcome:
    """Continue a comparison: finished executions are kept, an interrupted one is resumed from
    its study folder, missing ones are run; then the report (once more, if already made)."""
    folder = Path(path).resolve()
    if not is_comparison_folder(folder):
        raise SpecError(
            f"{folder}: not a comparison folder (no {STATE_FILE}); give the folder `harness compare` printed"
        )
    state = ComparisonState.load(folder)
    _recover_announced(folder, state)
    if any(execution.status != FINISHED for execution in state.executions):
        init_ray(address)
    if not state.reported:
        reopen_study_run(StudyRun(state.tracking_uri, state.experiment_id, state.run_id))
    return _continue(folder, state, address=address, progress=progress, report=report)


def _continue(
    folder: Path, state: ComparisonState, *, address: str | None, progress: bool, report: Report | None
) -> ComparisonOutcome:
    spec = ComparisonSpec.model_validate(state.spec)
    base = spec.study_for(spec.strategies[0], spec.seed_list()[0])
    objectives = [(o.metric, o.mode) for o in base.search.objectives or []]
    outcome = ComparisonOutcome(
        folder,
        spec,
        state.tracking_uri,
        state.experiment_id,
        state.run_id,
        # Several objectives: strategies are compared by their fronts' hypervolume (higher is better).
        c.HYPERVOLUME if objectives else base.search.metric,
        "max" if objectives else base.search.mode,
        optimum_of(base),
        state.executions,
        already_reported=state.reported,
        objectives=objectives,
        reference=base.search.reference,
    )
    comparison = StudyRun(state.tracking_uri, state.experiment_id, state.run_id)
    try:
        outcome.interrupted = _execute_all(folder, state, spec, outcome, address=address, progress=progress)
        if outcome.interrupted:
            finish_study_run(comparison, c.KILLED)
            return outcome
        files, metrics = report(outcome, folder / "report") if report is not None else ([], {})
    except BaseException as exc:
        if not state.reported:
            finish_study_run(comparison, c.KILLED if isinstance(exc, KeyboardInterrupt) else c.FAILED)
        raise
    if not state.reported:
        client = client_for(state.tracking_uri)
        for path in files:
            client.log_artifact(state.run_id, str(path))
        for key, value in metrics.items():
            client.log_metric(state.run_id, key, value)
        state.reported = True
        state.save(folder)
        finish_study_run(comparison)
    return outcome


def _execute_all(
    folder: Path,
    state: ComparisonState,
    spec: ComparisonSpec,
    outcome: ComparisonOutcome,
    *,
    address: str | None,
    progress: bool,
) -> bool:
    """Run what is not finished, in order; True when an execution was interrupted."""
    parallel = parallel_of(spec, sum(e.status != FINISHED for e in state.executions))
    if parallel > 1:
        return _execute_concurrently(folder, state, spec, outcome, parallel, progress=progress)
    with _stop_between_studies() as stop:
        return _execute_each(folder, state, spec, outcome, stop, address=address, progress=progress)


def parallel_of(spec: ComparisonSpec, executions: int) -> int:
    """Executions at once: the spec's number, or for `auto` as many as the cluster's CPUs keep
    busy, except under a budget in seconds (executions sharing CPUs would get unequal time)."""
    if executions <= 1:
        return 1
    if spec.parallel != "auto":
        return min(int(spec.parallel), executions)
    if spec.budget.seconds is not None:
        return 1
    base = spec.study_for(spec.strategies[0], spec.seed_list()[0])
    caps = [spec.study_for(s, spec.seed_list()[0]).search.max_concurrent_trials for s in spec.strategies]
    cap = None if None in caps else max(c for c in caps if c is not None)
    return auto_parallel(executions, base.resources.cpus_per_trial, cap)


def _key(execution: Execution) -> str:
    return f"{execution.strategy}-seed{execution.seed}"


def _execute_concurrently(
    folder: Path, state: ComparisonState, spec: ComparisonSpec, outcome: ComparisonOutcome, parallel: int,
    *, progress: bool,
) -> bool:
    """Run what is not finished, `parallel` executions at once, each in its own driver process."""
    total, jobs, by_key = len(state.executions), [], {}
    number = {_key(e): i for i, e in enumerate(state.executions, start=1)}
    for execution in state.executions:
        if execution.status == FINISHED:
            continue
        key, label = _key(execution), f"{execution.strategy}/{execution.seed}"
        by_key[key] = execution
        if execution.folder and _restorable(Path(execution.folder)):
            jobs.append(Job(key, label, state.tracking_uri, folder=execution.folder, progress=progress))
            continue
        _abandon(execution, state.tracking_uri)
        jobs.append(Job(
            key, label, state.tracking_uri, study=spec.study_for(execution.strategy, execution.seed).to_dict(),
            storage=str(folder / "studies"), parent_run_id=state.run_id,
            run_tags={c.COMPARISON_ID: state.run_id, c.STRATEGY: execution.strategy}, progress=progress,
        ))  # fmt: skip
    print(f"{spec.name}: {len(jobs)} executions, {parallel} at once", flush=True)
    failures: list[str] = []

    def started(job: Job) -> None:
        execution = by_key[job.key]
        print(f"[{number[job.key]}/{total}] {spec.name}: {execution.strategy}, seed {execution.seed}", flush=True)

    def announced(job: Job, study_folder: str, run_id: str) -> None:
        execution = by_key[job.key]
        execution.folder, execution.run_id, execution.status = study_folder, run_id, RUNNING
        state.save(folder)

    def done(job: Job, result: JobResult) -> None:
        execution = by_key[job.key]
        execution.folder = result.folder or execution.folder
        execution.run_id = result.run_id or execution.run_id
        if result.error is not None and not result.interrupted:
            failures.append(f"{execution.strategy}, seed {execution.seed}: {result.error}")
        else:
            outcome.ran += 1
        execution.status = FINISHED if result.error is None and not result.interrupted else INTERRUPTED
        state.save(folder)
        said = {FINISHED: "finished", INTERRUPTED: "stopped" if result.error is None else "failed"}[execution.status]
        print(f"[{number[job.key]}/{total}] {spec.name}: {execution.strategy}, seed {execution.seed} {said}", flush=True)

    interrupted = run_jobs(jobs, folder / "executions", parallel, on_start=started, on_announce=announced,
                           on_done=done)  # fmt: skip
    if failures:
        raise RuntimeError("executions failed; `harness resume` runs them again:\n" + "\n\n".join(failures))
    return interrupted or any(e.status != FINISHED for e in state.executions)


class _StopRequest:
    """Ctrl-C outside a study's search: the first asks the comparison to stop before its next
    execution (during a search, Ray Tune's own handler stops it cleanly); a second stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("stopping before the next execution (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)


@contextmanager
def _stop_between_studies() -> Iterator[_StopRequest]:
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread; a caller elsewhere keeps its own
        return
    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _execute_each(
    folder: Path,
    state: ComparisonState,
    spec: ComparisonSpec,
    outcome: ComparisonOutcome,
    stop: _StopRequest,
    *,
    address: str | None,
    progress: bool,
) -> bool:
    total = len(state.executions)
    for index, execution in enumerate(state.executions, start=1):
        if execution.status == FINISHED:
            continue
        if stop.requested:
            return True
        print(f"[{index}/{total}] {spec.name}: {execution.strategy}, seed {execution.seed}", flush=True)

        def record(study_folder: Path, execution: Execution = execution) -> None:
            execution.folder, execution.status = str(study_folder), RUNNING
            saved = json.loads((study_folder / STUDY_STATE_FILE).read_text())
            execution.run_id = saved["study"]["parent_run_id"]
            state.save(folder)

        try:
            if execution.folder and _restorable(Path(execution.folder)):
                result = resume_study(execution.folder, address=address)
            else:
                _abandon(execution, state.tracking_uri)
                result = run_study(
                    spec.study_for(execution.strategy, execution.seed),
                    address=address,
                    tracking_uri=state.tracking_uri,
                    storage=folder / "studies",
                    progress=progress,
                    announce=record,
                    parent_run_id=state.run_id,
                    run_tags={c.COMPARISON_ID: state.run_id, c.STRATEGY: execution.strategy},
                )
        except KeyboardInterrupt:
            if execution.folder:
                execution.status = INTERRUPTED
                state.save(folder)
            raise
        outcome.ran += 1
        execution.run_id = result.study.parent_run_id
        execution.status = INTERRUPTED if result.interrupted else FINISHED
        state.save(folder)
        if result.interrupted or stop.requested:
            return True
    return False


def _restorable(study_folder: Path) -> bool:
    return restorable(study_folder)


def _abandon(execution: Execution, tracking_uri: str) -> None:
    """An execution whose driver stopped before Ray saved any state starts again: its old run
    is closed KILLED, and only FINISHED study runs count in the report."""
    if execution.run_id is None:
        return
    client = client_for(tracking_uri)
    reason = "driver stopped before the study saved state; run again"
    if not end_run(client, execution.run_id, c.KILLED, reason, only_if_running=True):
        client.set_tag(execution.run_id, c.STOP_REASON, reason)
    execution.folder = execution.run_id = None


def _recover_announced(folder: Path, state: ComparisonState) -> None:
    """A comparison killed between a child's announcement and its own next save: take the study
    folder and run from the announcement the child left; close any other execution run of this
    comparison still RUNNING that no execution knows (its driver died before announcing it)."""
    for execution in state.executions:
        if execution.status != FINISHED and execution.folder is None:
            announced = read_json(folder / "executions" / f"{_key(execution)}{ANNOUNCED}")
            if announced is not None:
                execution.folder, execution.run_id = announced["folder"], announced["run_id"]
    state.save(folder)
    known = {e.run_id for e in state.executions}
    client = client_for(state.tracking_uri)
    query = f"tags.`{c.COMPARISON_ID}` = '{state.run_id}' and attributes.status = 'RUNNING'"
    for run in client.search_runs([state.experiment_id], query, max_results=1000):
        if run.info.run_id not in known and run.info.run_id != state.run_id:
            end_run(client, run.info.run_id, c.KILLED, "driver stopped before the study saved state; run again")
