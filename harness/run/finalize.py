"""Finalize an execution: reconcile MLflow with what Ray knows, evaluate the chosen trial
once, and close the parent run."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.run.callbacks import ENDED_FILE, delete_older_checkpoints, trial_epochs, trial_error_text
from harness.run.pareto import Front, pareto_front
from harness.run.plan import StudyPlan
from harness.study import StudySpec
from harness.tracking import contract as c
from harness.tracking import writer as writes
from harness.tracking.runs import StudyRun, client_for, finish_study_run
from harness.tracking.trials import ChildRuns

# What the best-trials table adds for a compression trial.
SHOWN_COMPRESSION = ("size/ratio", "latency/speedup_batch", "sparsity")


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
    front: Front | None = None  # a multi-objective study's Pareto front (then `top` lists its members)
    notes: list[str] = field(default_factory=list)  # study-level findings to print (a true sweet spot)


def finalize(plan: StudyPlan, study: StudyRun, path: Path, results: Any, resumed: bool = False) -> StudyOutcome:
    """Reconcile MLflow with what Ray knows, evaluate the chosen trial, close the parent;
    `resumed`: an earlier driver may have left gaps in histories (see below)."""
    from harness.search.budget import BUDGET_REASON

    spec = plan.spec
    runs = ChildRuns(study, plan, plan.scheduler_name)
    trials = results._experiment_analysis.trials
    ended = _ended_trials(path, trials)
    # A spent budget ends a study as completely as its last trial would: not an interruption.
    exhausted = _budget_exhausted(spec, path, trials)
    interrupted = not exhausted and (len(ended) < len(trials) or len(trials) < plan.expected_trials)
    cut: set[str] = set()
    all_trials, started = trials, set(runs.run_ids())
    # Trials the searcher queued that never started (when interrupted, or when a budget ran
    # out) get no run: a resume starts them and opens theirs; a spent budget never will.
    never_ran = {t.trial_id for t in trials if t.trial_id not in started and trial_epochs(t) == 0}
    trials = [t for t in trials if t.trial_id not in never_ran or (t.trial_id in ended and not exhausted)]
    # One query for every run's status: a run the writer already closed needs no call of its own.
    closed = {t for t, status in runs.statuses().items() if status != c.RUNNING}
    # Writes dropped during the search (a tracking outage) can leave gaps anywhere in a history,
    # and so can an earlier driver that stopped before its own finalize filled them in: then
    # every run's history is checked step by step, not only its tail.
    thorough = writes.take_dropped() > 0 or resumed
    for trial in trials:
        runs.ensure_history(trial.trial_id, trial.config, _history(trial), thorough)
        if trial.trial_id in ended and trial.trial_id in closed:
            continue
        if trial.trial_id in ended:
            # Runs still open here were stopped by the budget (Ray reports no completion for them).
            open_before = exhausted and runs.client.get_run(runs.ensure(trial.trial_id, trial.config)).info.status
            status = runs.close(
                trial.trial_id, trial.config, trial_epochs(trial), error=_error(trial),
                cut_reason=BUDGET_REASON if exhausted else None,
            )
            if open_before == c.RUNNING and status == c.KILLED:
                cut.add(trial.trial_id)
        else:
            runs.suspend(trial.trial_id, c.INTERRUPTED_REASON)
    runs.close_orphans({t.trial_id for t in all_trials})
    if not interrupted and not plan.scheduler.keeps_every_checkpoint:
        # Ray Tune saved the final state (waiting for it to reach storage) before `fit`
        # returned, naming each trial's newest checkpoint: the older ones can go. (After a
        # Ctrl-C, a trial being stopped may still checkpoint after that save: not then.)
        for trial in all_trials:
            if trial.checkpoint is not None:
                delete_older_checkpoints(Path(trial.checkpoint.path))

    statuses = runs.statuses()
    counts = {
        "trials": len(trials),
        "completed": sum(s == c.FINISHED for s in statuses.values()),
        "stopped early": sum(s == c.KILLED and not interrupted and t not in cut for t, s in statuses.items()),
        "failed": sum(s == c.FAILED for s in statuses.values()),
    }
    if exhausted:
        counts["cut by budget"] = len(cut)
    outcome = StudyOutcome(path, study, spec.search.metric, spec.search.mode, counts, interrupted=interrupted)
    finished = [t for t in trials if t.trial_id in ended]
    outcome.top = _top_trials(spec, finished, runs)
    if spec.search.objectives:
        outcome.front = _front(spec, finished)
        on_front = {m["trial_id"]: i for i, m in enumerate(outcome.front.members)}
        rows = _top_trials(spec, finished, runs, k=len(finished))
        outcome.top = sorted((r for r in rows if r["trial_id"] in on_front), key=lambda r: on_front[r["trial_id"]])
    client = client_for(study.tracking_uri)
    client.set_tag(study.parent_run_id, c.TRIALS_FAILED, str(counts["failed"]))
    if interrupted:
        finish_study_run(study, c.KILLED)
        return outcome
    if outcome.top:
        best = outcome.top[0]
        if outcome.front is not None:  # every front member is scored on the test split, once
            tested = _record_front(plan, results, outcome, runs, study)
            parent_metrics = tested.get(best["trial_id"], {})
        else:
            parent_metrics = _evaluate_chosen(plan, results, best["trial_id"])
        if plan.kind.reads_data:  # an objective has no test split: its parent records the exact regret
            outcome.test_metrics = parent_metrics
        for key, value in parent_metrics.items():
            client.log_metric(study.parent_run_id, key, value)
        client.log_metric(study.parent_run_id, f"{c.BEST_PREFIX}{spec.search.metric}", best[spec.search.metric])
        client.set_tag(study.parent_run_id, c.BEST_TRIAL_ID, best["trial_id"])
        client.set_tag(study.parent_run_id, c.BEST_RUN_ID, best["run_id"])
        _log_best_model(plan, results, best["trial_id"], study)
        if spec.bias_variance is not None:
            outcome.notes += _record_true_best(finished, best["trial_id"], client, study)
    report: dict[str, Any] = {"counts": counts, "top": outcome.top, "test": outcome.test_metrics}
    if outcome.front is not None:
        report["pareto"] = {
            "objectives": [o.model_dump() for o in spec.search.objectives or []],
            "constraints": [str(k) for k in spec.search.constraints or []],
            "reference": outcome.front.reference,
            "hypervolume": outcome.front.hypervolume,
            "members": [r["trial_id"] for r in outcome.top],
            "infeasible": outcome.front.infeasible,
        }
    client.log_text(study.parent_run_id, json.dumps(report, indent=2, default=str), c.REPORT_ARTIFACT)
    finish_study_run(study)
    return outcome


def _budget_exhausted(spec: StudySpec, path: Path, trials: list[Any]) -> bool:
    """Whether the study's epoch or time budget ended it (as its budget file in `path` records;
    the epochs are also summed here, should that file be missing)."""
    from harness.search.budget import read_budget

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
    return trial_error_text(trial) if trial.status == "ERROR" else None


def _front(spec: StudySpec, trials: list[Any]) -> Front:
    rows = [
        {"trial_id": t.trial_id, **(t.last_result or {})} for t in trials if t.status == "TERMINATED"
    ]
    objectives = [(o.metric, o.mode) for o in spec.search.objectives or []]
    return pareto_front(rows, objectives, constraints=spec.search.constraints or [], reference=spec.search.reference)


def _record_front(plan: StudyPlan, results: Any, outcome: StudyOutcome, runs: ChildRuns, study: StudyRun) -> dict[str, dict[str, float]]:
    """Score each front member on the test split once; record them on the parent run
    (`pareto/<trial>/test/acc`, `pareto/hypervolume`, `pareto.csv`) and tag the trial runs."""
    assert outcome.front is not None
    client = client_for(study.tracking_uri)
    tested = {row["trial_id"]: _evaluate_chosen(plan, results, row["trial_id"]) for row in outcome.top}
    run_ids = runs.run_ids()
    for trial_id, metrics in tested.items():
        for key, value in metrics.items():
            client.log_metric(study.parent_run_id, f"{c.PARETO_PREFIX}{trial_id}/{key}", value)
        if trial_id in run_ids:
            client.set_tag(run_ids[trial_id], c.PARETO, "true")
    for trial_id in outcome.front.infeasible:
        if trial_id in run_ids:
            client.set_tag(run_ids[trial_id], c.FEASIBLE, "false")
    client.log_metric(study.parent_run_id, c.HYPERVOLUME, outcome.front.hypervolume)
    client.log_metric(study.parent_run_id, c.PARETO_SIZE, len(outcome.top))
    objectives = [o.metric for o in plan.spec.search.objectives or []]
    test_keys = sorted({k for metrics in tested.values() for k in metrics})
    params = sorted({k for row in outcome.top for k in row["params"]})
    lines = io.StringIO()
    writer = csv.writer(lines)
    writer.writerow(["trial_id", "run_id", *objectives, *test_keys, *params])
    for row in outcome.top:
        writer.writerow([
            row["trial_id"], row["run_id"], *[row.get(m) for m in objectives],
            *[tested[row["trial_id"]].get(k) for k in test_keys], *[row["params"].get(p) for p in params],
        ])
    client.log_text(study.parent_run_id, lines.getvalue(), c.PARETO_CSV)
    return tested


def _top_trials(spec: StudySpec, trials: list[Any], runs: ChildRuns, k: int = 5) -> list[dict[str, Any]]:
    sign = 1 if spec.search.mode == "min" else -1
    objectives = [o.metric for o in spec.search.objectives or []]
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
            **{k: v for k, v in trial.last_result.items() if k in ("val/loss", "val/acc", *SHOWN_COMPRESSION, *objectives)},
            # k-fold trials report the spread of the objective over folds.
            **{k: v for k, v in trial.last_result.items() if k == f"{spec.search.metric}_std"},
            "params": dict(trial.config),
        }
        rows.append(row)
    rows.sort(key=lambda r: sign * r[spec.search.metric])
    return rows[:k]


def _record_true_best(trials: list[Any], chosen: str, client: Any, study: StudyRun) -> list[str]:
    """A bias-variance study knows each trial's true expected error: record the trial it
    favours beside the validation metric's choice (the "sweet spot" each finds)."""
    key = "bv/expected_error"
    scored = [t for t in trials if (t.last_result or {}).get(key) is not None]
    if not scored:
        return []
    true_best = min(scored, key=lambda t: t.last_result[key])
    client.set_tag(study.parent_run_id, c.TRUE_BEST_TRIAL_ID, true_best.trial_id)
    client.log_metric(study.parent_run_id, "bv/true_best/expected_error", float(true_best.last_result[key]))
    chosen_trial = next((t for t in scored if t.trial_id == chosen), None)
    if chosen_trial is not None:
        client.log_metric(study.parent_run_id, "bv/chosen/expected_error", float(chosen_trial.last_result[key]))

    def described(trial: Any) -> str:
        params = ", ".join(f"{k}={v}" for k, v in trial.config.items())
        return f"trial {trial.trial_id} ({params}), {key} {trial.last_result[key]:.4f}"

    lines = [f"true sweet spot (lowest {key}): {described(true_best)}"]
    if chosen_trial is not None:
        lines.append(f"validation's choice:                  {described(chosen_trial)}")
    return lines


def _log_best_model(plan: StudyPlan, results: Any, trial_id: str, study: StudyRun) -> None:
    """The chosen trial's network as the parent run's MLflow model (kinds that train one)."""
    if plan.kind.model is None:
        return
    from harness.tracking.models import log_model

    for result in results:
        if result.metrics.get("trial_id") == trial_id:
            net = plan.kind.model(plan.trial_spec(result.config), result)
            if net is not None:
                log_model(client_for(study.tracking_uri), study.parent_run_id, net)
            return


def _evaluate_chosen(plan: StudyPlan, results: Any, trial_id: str) -> dict[str, float]:
    """The trial kind's evaluation of the chosen trial (the sealed test split, or an
    objective's exact regret), from its Ray result."""
    for result in results:
        if result.metrics.get("trial_id") == trial_id:
            return plan.kind.evaluate(plan.trial_spec(result.config), result)
    return {}
