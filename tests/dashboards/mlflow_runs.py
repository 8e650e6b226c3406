"""Hand-made MLflow runs laid out as the harness writes them (tags, metrics per epoch, the
spec and report artifacts), for dashboard tests with known answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from mlflow.tracking import MlflowClient

from harness.tracking import contract as c


def make_study(
    client: MlflowClient, name: str, trials: list[dict[str, Any]], *, metric: str = "val/loss", mode: str = "min",
    objectives: list[tuple[str, str]] | None = None, seed: int = 0, reference: dict[str, float] | None = None,
) -> str:
    """A finished execution: each trial dict has `params`, `curve` (metric per epoch), optional
    `status`, `reason`, `final` (last metrics) and `pareto`. Trials end in list order."""
    experiment = client.get_experiment_by_name(name)
    # Artifacts beside the SQLite store: MLflow's default is ./mlruns in the working directory.
    store = Path(client.tracking_uri.removeprefix("sqlite:///"))
    location = (store.parent / "artifacts" / name).as_uri()
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name, artifact_location=location)
    parent = client.create_run(experiment_id, tags={c.KIND: c.KIND_STUDY, c.SEED: str(seed), c.STRATEGY: "random"})
    pid = parent.info.run_id
    search: dict[str, Any] = {"metric": metric, "mode": mode}
    if objectives:
        search["objectives"] = [{"metric": m, "mode": d} for m, d in objectives]
    client.log_text(pid, yaml.safe_dump({"name": name, "description": "a hand-made study", "search": search}), c.SPEC_ARTIFACT)
    best = None
    for i, trial in enumerate(trials):
        tags = {c.KIND: c.KIND_TRIAL, c.PARENT_RUN_ID: pid, c.TRIAL_ID: f"t{i}"}
        if trial.get("pareto"):
            tags[c.PARETO] = "true"
        run = client.create_run(experiment_id, tags=tags, start_time=1_000 + i)
        for key, value in trial["params"].items():
            client.log_param(run.info.run_id, key, value)
        for epoch, value in enumerate(trial["curve"], start=1):
            client.log_metric(run.info.run_id, metric, value, step=epoch)
            client.log_metric(run.info.run_id, c.EPOCH, epoch, step=epoch)
        for key, value in trial.get("final", {}).items():
            client.log_metric(run.info.run_id, key, value, step=len(trial["curve"]))
        status = trial.get("status", c.FINISHED)
        if trial.get("reason"):
            client.set_tag(run.info.run_id, c.STOP_REASON, trial["reason"])
        client.set_terminated(run.info.run_id, status=status, end_time=2_000 + i)
        if status == c.FINISHED and (best is None or trial["curve"][-1] < best[1]):
            best = (f"t{i}", trial["curve"][-1])
    if best is not None:
        client.set_tag(pid, c.BEST_TRIAL_ID, best[0])
    client.log_metric(pid, "test/acc", 0.9)
    report: dict[str, Any] = {"counts": {"trials": len(trials)}}
    if objectives:
        report["pareto"] = {"reference": reference or {m: 0.0 for m, _ in objectives}}
    client.log_text(pid, json.dumps(report), c.REPORT_ARTIFACT)
    client.set_terminated(pid, status=c.FINISHED)
    return pid
