"""A study execution read back from MLflow into plain rows: the parent run, every trial run
(status, reason, parameters, final metrics, the search metric per epoch), the objectives, the
chosen trial's test scores. Everything a study dashboard shows comes from here."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mlflow.tracking import MlflowClient

from dashboards.statistics import best_so_far
from harness.tracking import contract as c


@dataclass
class TrialRow:
    trial_id: str
    run_id: str
    status: str
    reason: str
    params: dict[str, Any]
    metrics: dict[str, float]
    curve: list[tuple[int, float]]  # (epoch, value) of the study metric
    start_ms: int
    end_ms: int | None
    pareto: bool = False
    feasible: bool = True


@dataclass
class StudyData:
    experiment: str
    run_id: str
    name: str
    description: str
    status: str
    metric: str
    mode: str
    trials: list[TrialRow]
    objectives: list[tuple[str, str]] = field(default_factory=list)
    test: dict[str, float] = field(default_factory=dict)
    best_trial_id: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    trial_kind: str = ""
    true_best_trial_id: str | None = None  # a bias-variance study's lowest true expected error

    def ordered(self) -> list[TrialRow]:
        """Trials in the order their results became known (end time; running ones last)."""
        return sorted(self.trials, key=lambda t: (t.end_ms is None, t.end_ms or 0, t.trial_id))

    def values(self, metric: str | None = None) -> np.ndarray:
        key = metric or self.metric
        return np.array([t.metrics.get(key, math.nan) if t.status != c.FAILED else math.nan for t in self.ordered()])

    def best_so_far(self) -> np.ndarray:
        return best_so_far(self.values(), self.mode)


def _artifact_text(client: MlflowClient, run_id: str, name: str) -> str | None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in a page build
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(client.download_artifacts(run_id, name, tmp)).read_text()
    except Exception:  # an artifact that is not there (an old or interrupted run): shown as absent
        return None


def load_study(client: MlflowClient, run_id: str) -> StudyData:
    """The execution whose parent run is `run_id`."""
    parent = client.get_run(run_id)
    if parent.data.tags.get(c.KIND) != c.KIND_STUDY:
        raise ValueError(f"run {run_id!r} is not a study's parent run (its {c.KIND} is {parent.data.tags.get(c.KIND)!r})")
    experiment = client.get_experiment(parent.info.experiment_id)
    spec = yaml.safe_load(_artifact_text(client, run_id, c.SPEC_ARTIFACT) or "{}") or {}
    search = spec.get("search", {})
    objectives = [(o["metric"], o["mode"]) for o in search.get("objectives") or []]
    metric, mode = search.get("metric", "val/loss"), search.get("mode", "min")
    report = json.loads(_artifact_text(client, run_id, c.REPORT_ARTIFACT) or "{}")
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{c.PARENT_RUN_ID}` = '{run_id}' and tags.`{c.KIND}` = '{c.KIND_TRIAL}'",
        max_results=50000,
    )
    trials = []
    for run in runs:
        history = client.get_metric_history(run.info.run_id, metric)
        by_step = {int(p.step): float(p.value) for p in sorted(history, key=lambda p: p.timestamp)}
        trials.append(
            TrialRow(
                trial_id=run.data.tags.get(c.TRIAL_ID, run.info.run_id),
                run_id=run.info.run_id,
                status=run.info.status,
                reason=run.data.tags.get(c.STOP_REASON, ""),
                params=dict(run.data.params),
                metrics=dict(run.data.metrics),
                curve=sorted(by_step.items()),
                start_ms=run.info.start_time,
                end_ms=run.info.end_time,
                pareto=run.data.tags.get(c.PARETO) == "true",
                feasible=run.data.tags.get(c.FEASIBLE) != "false",
            )
        )
    test = {k: v for k, v in parent.data.metrics.items() if k.startswith("test/")}
    seed = parent.data.tags.get(c.SEED)
    return StudyData(
        experiment=experiment.name, run_id=run_id, name=spec.get("name", experiment.name),
        description=spec.get("description", ""), status=parent.info.status, metric=metric, mode=mode,
        trials=trials, objectives=objectives, test=test, best_trial_id=parent.data.tags.get(c.BEST_TRIAL_ID),
        report=report, seed=int(seed) if seed and seed.isdigit() else None,
        trial_kind=parent.data.tags.get(c.TRIAL_KIND, ""),
        true_best_trial_id=parent.data.tags.get(c.TRUE_BEST_TRIAL_ID),
    )


def executions(client: MlflowClient, experiment: str) -> list[str]:
    """Parent run ids of every finished execution of a study (an MLflow experiment), oldest first."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no experiment {experiment!r} in this tracking store")
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`{c.KIND}` = '{c.KIND_STUDY}'", max_results=50000,
    )
    return [r.info.run_id for r in sorted(runs, key=lambda r: r.info.start_time) if r.info.status == c.FINISHED]
