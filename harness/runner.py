"""Runs a study: Ray (local or `--address`), a Tuner built from the spec, MLflow tracking,
then one evaluation of the chosen configuration on the sealed test split. Resumable."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SpecError
from harness.paths import default_artifact_root, default_storage, default_tracking_uri
from harness.space import to_tune_space
from harness.spec import StudySpec
from harness.strategies import SCHEDULERS, SEARCHERS, max_epochs_bound, resolve_strategy
from harness.tracking import (
    KILLED,
    ChildRuns,
    StudyRun,
    client_for,
    finish_study_run,
    reopen_study_run,
    start_study_run,
)

STATE_FILE = "harness_study.json"


@dataclass
class StudyOutcome:
    """What a finished (or interrupted) execution produced, for the CLI to print."""

    experiment_path: Path
    study: StudyRun
    metric: str
    mode: str
    counts: dict[str, int]
    top: list[dict[str, Any]] = field(default_factory=list)
    test_metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


def init_ray(address: str | None) -> None:
    """Connect to a running cluster (`auto`, `host:port`, `ray://...`) or start a local one."""
    import ray

    # Experiment state is cheap to save for studies of this size: save it often, so that a
    # killed driver loses as little as possible.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The harness draws its own progress view; Ray's console reporter would repeat it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise SpecError(f"--address {address!r}: cannot connect to a Ray cluster there ({exc})") from None


def make_trainable(spec: StudySpec) -> Any:
    from ray import tune

    from harness.objective_trial import objective_trainable
    from harness.trial import ray_trainable

    resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    if spec.objective is not None:  # evaluates its benchmark function instead of training
        return tune.with_resources(objective_trainable(spec), resources)
    return tune.with_resources(tune.with_parameters(ray_trainable, base_spec=spec.to_dict()), resources)


def trial_dirname(trial: Any) -> str:
    return f"trial-{trial.trial_id}"


def expected_trials(spec: StudySpec) -> int:
    searcher, _ = resolve_strategy(spec)
    if not SEARCHERS.get(searcher).grid:
        return spec.search.num_trials
    total = 1
    for dist in spec.search.space.values():
        total *= len(dist.probe_values())
    return total


def build_tuner(spec: StudySpec, study: StudyRun, storage: Path, name: str, progress: bool) -> Any:
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from harness.callbacks import (
        CheckpointPruner,
        EndedTrialsCallback,
        MlflowTrialCallback,
        ProgressCallback,
        SchedulerStateCallback,
    )

    searcher_name, scheduler_name = resolve_strategy(spec)
    searcher = SEARCHERS.get(searcher_name)
    callbacks: list[Any] = [
        MlflowTrialCallback(ChildRuns(study, spec.to_dict(), scheduler_name)),
        EndedTrialsCallback(storage / name),
    ]
    if progress:
        callbacks.append(
            ProgressCallback(spec.search.metric, spec.search.mode, max_epochs_bound(spec), expected_trials(spec))
        )
    budget = None
    if spec.search.budget_epochs is not None or spec.search.time_budget_s is not None:
        from harness.budget import StudyBudget

        budget = StudyBudget(storage / name, spec.search.budget_epochs, spec.search.time_budget_s)
        # Trials queued but never started when the budget ends have no results; reading the
        # study back would warn once per such trial.
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    search_alg = searcher.build(spec)
    scheduler_entry = SCHEDULERS.get(scheduler_name)
    scheduler = scheduler_entry(spec)
    if scheduler_entry.resumable:
        callbacks.append(SchedulerStateCallback(scheduler))
    if not scheduler_entry.keeps_every_checkpoint:
        callbacks.append(CheckpointPruner())  # in place of Ray's num_to_keep (see its docstring)
    # A BasicVariantGenerator caps concurrency itself; Ray would ignore the Tuner's cap and warn.
    concurrency = None if isinstance(search_alg, BasicVariantGenerator) else spec.search.max_concurrent_trials
    return tune.Tuner(
        make_trainable(spec),
        param_space=to_tune_space(spec.search.space, as_grid=searcher.grid),
        tune_config=tune.TuneConfig(
            metric=spec.search.metric,
            mode=spec.search.mode,
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=1 if searcher.grid else spec.search.num_trials,
            max_concurrent_trials=concurrency,
            trial_dirname_creator=trial_dirname,
            # A new worker per trial re-imports torch and Lightning (seconds each); reusing
            # workers is safe because every trial reseeds and rebuilds everything it uses.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            callbacks=callbacks,
            stop=budget,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )


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
    init_ray(address)  # before any MLflow run: a bad address must leave nothing behind
    local_store = tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri
    study = start_study_run(
        spec, tracking_uri, spec.search.strategy, default_artifact_root() if local_store else None,
        parent_run_id=parent_run_id, extra_tags=run_tags,
    )
    name = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{study.parent_run_id[:8]}"
    path = storage / name
    path.mkdir(parents=True, exist_ok=True)
    (path / STATE_FILE).write_text(json.dumps({"spec": spec.to_dict(), "study": asdict(study)}, indent=2))
    client_for(tracking_uri).set_tag(study.parent_run_id, "ray_experiment_path", str(path))
    if announce is not None:
        announce(path)
    with _closed_on_interrupt(study):
        tuner = build_tuner(spec, study, storage, name, progress)
        results = tuner.fit()
    with _closed_on_interrupt(study):  # a Ctrl-C while reconciling: `harness resume` finishes it
        return finalize(spec, study, path, results)


def resume_study(path: str | Path, *, address: str | None = None) -> StudyOutcome:
    """Continue an execution whose driver died: finished trials stay finished, unfinished
    ones continue from their last checkpoint, searcher and scheduler state included."""
    from ray import tune

    path = Path(path).resolve()
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise SpecError(f"{path}: not a study folder (no {STATE_FILE}); give the folder `harness run` printed")
    state = json.loads(state_file.read_text())
    spec = StudySpec.model_validate(state["spec"])
    study = StudyRun(**state["study"])
    init_ray(address)
    if not tune.Tuner.can_restore(str(path)):
        raise SpecError(f"{path}: Ray Tune saved no state here yet; run the study again instead")
    reopen_study_run(study)
    with _closed_on_interrupt(study):
        tuner = tune.Tuner.restore(
            str(path), trainable=make_trainable(spec), resume_unfinished=True, resume_errored=False
        )
        results = tuner.fit()
    with _closed_on_interrupt(study):
        return finalize(spec, study, path, results)


@contextmanager
def _closed_on_interrupt(study: StudyRun) -> Iterator[None]:
    """Ray Tune turns a first Ctrl-C during `fit` into a clean stop; one that lands before or
    after (while the Tuner is built, or a second Ctrl-C) must not leave the parent RUNNING."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    except KeyboardInterrupt:
        finish_study_run(study, KILLED)
        raise
    finally:
        # A fit that ends normally leaves Ray Tune's SIGINT handler in place, which would swallow
        # the next Ctrl-C (during finalize, or a comparison's next study): give the caller's back.
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


def finalize(spec: StudySpec, study: StudyRun, path: Path, results: Any) -> StudyOutcome:
    """Reconcile MLflow with what Ray knows, evaluate the best trial on test, close the parent."""
    from harness.budget import BUDGET_REASON
    from harness.callbacks import trial_epochs

    _, scheduler_name = resolve_strategy(spec)
    runs = ChildRuns(study, spec.to_dict(), scheduler_name)
    trials = results._experiment_analysis.trials
    ended = _ended_trials(path, trials)
    # A spent budget ends a study as completely as its last trial would: not an interruption.
    exhausted = _budget_exhausted(spec, path, trials)
    interrupted = not exhausted and (len(ended) < len(trials) or len(trials) < expected_trials(spec))
    cut: set[str] = set()
    all_trials, started = trials, set(runs.run_ids())
    # Trials the searcher queued that never started (when interrupted, or when a budget ran
    # out) get no run: a resume starts them and opens theirs; a spent budget never will.
    never_ran = {t.trial_id for t in trials if t.trial_id not in started and trial_epochs(t) == 0}
    trials = [t for t in trials if t.trial_id not in never_ran or (t.trial_id in ended and not exhausted)]
    for trial in trials:
        runs.ensure_history(trial.trial_id, trial.config, _history(trial))
        if trial.trial_id in ended:
            # Runs still open here were stopped by the budget (Ray reports no completion for them).
            open_before = exhausted and runs.client.get_run(runs.ensure(trial.trial_id, trial.config)).info.status
            status = runs.close(
                trial.trial_id, trial.config, trial_epochs(trial), error=_error(trial),
                cut_reason=BUDGET_REASON if exhausted else None,
            )
            if open_before == "RUNNING" and status == KILLED:
                cut.add(trial.trial_id)
        else:
            runs.suspend(trial.trial_id, "driver interrupted; `harness resume` continues this trial")
    runs.close_orphans({t.trial_id for t in all_trials})
    if not interrupted and not SCHEDULERS.get(scheduler_name).keeps_every_checkpoint:
        # Ray Tune saved the final state (waiting for it to reach storage) before `fit`
        # returned, naming each trial's newest checkpoint: the older ones can go. (After a
        # Ctrl-C, a trial being stopped may still checkpoint after that save: not then.)
        from harness.callbacks import delete_older_checkpoints

        for trial in all_trials:
            if trial.checkpoint is not None:
                delete_older_checkpoints(Path(trial.checkpoint.path))

    statuses = runs.statuses()
    counts = {
        "trials": len(trials),
        "completed": sum(s == "FINISHED" for s in statuses.values()),
        "stopped early": sum(s == KILLED and not interrupted and t not in cut for t, s in statuses.items()),
        "failed": sum(s == "FAILED" for s in statuses.values()),
    }
    if exhausted:
        counts["cut by budget"] = len(cut)
    outcome = StudyOutcome(path, study, spec.search.metric, spec.search.mode, counts, interrupted=interrupted)
    outcome.top = _top_trials(spec, [t for t in trials if t.trial_id in ended], runs)
    client = client_for(study.tracking_uri)
    client.set_tag(study.parent_run_id, "trials_failed", str(counts["failed"]))
    if interrupted:
        finish_study_run(study, KILLED)
        return outcome
    if outcome.top:
        best = outcome.top[0]
        if spec.objective is None:
            outcome.test_metrics = _evaluate_best(spec, results, best["trial_id"])
            parent_metrics = outcome.test_metrics
        else:
            # An objective has no test split: the parent records the chosen trial's exact regret.
            from harness.objective_trial import best_objective_metrics

            parent_metrics = best_objective_metrics(spec, results, best["trial_id"])
        for key, value in parent_metrics.items():
            client.log_metric(study.parent_run_id, key, value)
        client.log_metric(study.parent_run_id, f"best/{spec.search.metric}", best[spec.search.metric])
        client.set_tag(study.parent_run_id, "best_trial_id", best["trial_id"])
        client.set_tag(study.parent_run_id, "best_run_id", best["run_id"])
    report = {"counts": counts, "top": outcome.top, "test": outcome.test_metrics}
    client.log_text(study.parent_run_id, json.dumps(report, indent=2, default=str), "report.json")
    finish_study_run(study)
    return outcome


def _budget_exhausted(spec: StudySpec, path: Path, trials: list[Any]) -> bool:
    """Whether the study's epoch or time budget ended it (as its budget file in `path` records;
    the epochs are also summed here, should that file be missing)."""
    from harness.budget import read_budget
    from harness.callbacks import trial_epochs

    if spec.search.budget_epochs is None and spec.search.time_budget_s is None:
        return False
    if read_budget(path).get("exhausted"):
        return True
    return spec.search.budget_epochs is not None and sum(map(trial_epochs, trials)) >= spec.search.budget_epochs


def _ended_trials(path: Path, trials: list[Any]) -> set[str]:
    """Ids of the trials that finished or failed.

    After a Ctrl-C, Ray Tune saves the study's state and then stops the running trials, which
    marks them TERMINATED in memory; the saved state still says which ones had really ended.
    The saved state misses trials a scheduler stopped while they were paused, which the list
    written at the end of the tuning loop (`EndedTrialsCallback`) holds.
    """
    from ray.tune import ExperimentAnalysis

    from harness.callbacks import ENDED_FILE

    try:
        saved = {t.trial_id: t.status for t in ExperimentAnalysis(str(path)).trials}
    except Exception:  # no readable saved state: trust what Ray holds in memory
        saved = {}
    try:
        at_loop_end = set(json.loads((path / ENDED_FILE).read_text()))
    except (OSError, ValueError):
        at_loop_end = set()
    return {
        t.trial_id
        for t in trials
        if saved.get(t.trial_id, t.status) in ("TERMINATED", "ERROR") or t.trial_id in at_loop_end
    }


def _history(trial: Any) -> list[dict[str, Any]]:
    """Every result a trial reported, read back from Ray's per-trial progress file."""
    progress = Path(trial.path) / "result.json" if trial.path else None
    if progress is None or not progress.is_file():
        return [trial.last_result] if trial.last_result else []
    rows = []
    for line in progress.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed driver
    return rows


def _error(trial: Any) -> str | None:
    from harness.callbacks import trial_error_text

    return trial_error_text(trial) if trial.status == "ERROR" else None


def _top_trials(spec: StudySpec, trials: list[Any], runs: ChildRuns, k: int = 5) -> list[dict[str, Any]]:
    import math

    from harness.callbacks import trial_epochs

    sign = 1 if spec.search.mode == "min" else -1
    rows = []
    run_ids = runs.run_ids()
    for trial in trials:
        value = (trial.last_result or {}).get(spec.search.metric)
        if trial.status != "TERMINATED" or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        row = {
            "trial_id": trial.trial_id,
            "run_id": run_ids.get(trial.trial_id, ""),
            "epochs": trial_epochs(trial),
            spec.search.metric: float(value),
            **{k: v for k, v in trial.last_result.items() if k in ("val/loss", "val/acc")},
            # k-fold trials report the spread of the objective over folds.
            **{k: v for k, v in trial.last_result.items() if k == f"{spec.search.metric}_std"},
            "params": dict(trial.config),
        }
        rows.append(row)
    rows.sort(key=lambda r: sign * r[spec.search.metric])
    return rows[:k]


def _evaluate_best(spec: StudySpec, results: Any, trial_id: str) -> dict[str, float]:
    from harness.trial import CHECKPOINT_FILE, evaluate_checkpoint

    for result in results:
        if result.metrics.get("trial_id") == trial_id and result.checkpoint is not None:
            with result.checkpoint.as_directory() as folder:
                return evaluate_checkpoint(spec.with_values(result.config), Path(folder) / CHECKPOINT_FILE)
    return {}
