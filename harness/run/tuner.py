"""Tuner assembly: a Ray Tune Tuner from a study plan."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from harness.run.callbacks import (
    CheckpointPruner,
    EndedTrialsCallback,
    MlflowTrialCallback,
    PeriodicCallback,
    ProgressCallback,
    RetryGuard,
    SchedulerStateCallback,
)
from harness.run.plan import StudyPlan
from harness.run.signals import SigtermGuard
from harness.search.space import to_tune_space
from harness.tracking.runs import StudyRun
from harness.tracking.trials import ChildRuns
from harness.trial.retries import RETRIES_AFTER_NODE_LOSS

REFRESH_S = 60.0  # how often a running study's live dashboard is rebuilt


def make_trainable(plan: StudyPlan, prepared: dict[str, Any] | None = None) -> Any:
    """The trial kind's trainable with the study's per-trial resources and what was prepared
    once for all its trials (a compression study's teacher)."""
    from ray import tune

    spec = plan.spec
    if spec.compress is not None:
        # A compression trial reports its fine-tuning epochs before the artifact exists: only
        # its last report has the size and latency a search may read (Tune reads this switch
        # in the driver, for a fresh run and a resumed one alike).
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    return tune.with_resources(plan.kind.trainable(spec, **(prepared or {})), resources)


def trial_dirname(trial: Any) -> str:
    return f"trial-{trial.trial_id}"


def build_tuner(
    plan: StudyPlan, study: StudyRun, storage: Path, name: str, progress: bool, prepared: dict[str, Any] | None = None,
    refresh: Any = None,
) -> Any:
    """The Tuner of one execution: the plan's searcher, scheduler and trainable, the driver's
    callbacks (MLflow child runs, ended trials, progress, scheduler state, checkpoint pruning)
    and the study's budget as a stopper."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    spec = plan.spec
    searcher = plan.searcher
    from ray.tune.logger import JsonLoggerCallback

    callbacks: list[Any] = [
        JsonLoggerCallback(),  # each trial's result.json, which finalize reconciles MLflow from
        MlflowTrialCallback(ChildRuns(study, plan, plan.scheduler_name)),
        EndedTrialsCallback(storage / name),
        SigtermGuard(),
        RetryGuard(),
    ]
    if refresh is not None:
        callbacks.append(PeriodicCallback(refresh, REFRESH_S))
    if progress:
        callbacks.append(
            ProgressCallback(
                plan.metric, plan.mode, plan.max_epochs, plan.expected_trials,
                spec.search.budget_epochs, spec.search.time_budget_s,
            )
        )
    budget = None
    if spec.search.budget_epochs is not None or spec.search.time_budget_s is not None:
        from harness.search.budget import StudyBudget

        budget = StudyBudget(storage / name, spec.search.budget_epochs, spec.search.time_budget_s)
        # Trials queued but never started when the budget ends have no results; reading the
        # study back would warn once per such trial.
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    search_alg = searcher.build(spec)
    scheduler_entry = plan.scheduler
    scheduler = scheduler_entry(spec)
    if scheduler_entry.resumable:
        callbacks.append(SchedulerStateCallback(scheduler))
    if not scheduler_entry.keeps_every_checkpoint:
        callbacks.append(CheckpointPruner())  # in place of Ray's num_to_keep (see its docstring)
    # A BasicVariantGenerator caps concurrency itself; Ray would ignore the Tuner's cap and warn.
    concurrency = None if isinstance(search_alg, BasicVariantGenerator) else spec.search.max_concurrent_trials
    return tune.Tuner(
        make_trainable(plan, prepared),
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
            # Ray retries any failed trial; RetryGuard lets only those lost with their worker train again.
            failure_config=tune.FailureConfig(max_failures=RETRIES_AFTER_NODE_LOSS),
            verbose=0,
        ),
    )
