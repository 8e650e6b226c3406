"""Re-run one trial from its stored resolved spec and compare with what MLflow recorded."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow.exceptions import MlflowException

from harness.errors import SpecError
from harness.study import spec_from_dict
from harness.tracking import contract as c
from harness.tracking.runs import client_for
from harness.tracking.trials import numeric_metrics
from harness.trial.kinds import TRIAL_KINDS, kind_for

# Timings: reported again, never compared (a shared machine's clock is not reproducible).
UNCOMPARED = ("latency/", "overhead/")


@dataclass(frozen=True)
class Comparison:
    epoch: int
    metric: str
    recorded: float
    reproduced: float

    @property
    def diff(self) -> float:
        if math.isnan(self.recorded) and math.isnan(self.reproduced):
            return 0.0
        return abs(self.recorded - self.reproduced)


def recorded_history(client: Any, run: Any) -> dict[str, dict[int, float]]:
    """Metric -> epoch -> value; the latest value wins where a step was logged twice."""
    history: dict[str, dict[int, float]] = {}
    for key in numeric_metrics(run.data.metrics):
        points = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.timestamp)
        history[key] = {int(p.step): float(p.value) for p in points}
    return history


def reproduce_run(run_id: str, tracking_uri: str) -> list[Comparison]:
    """Re-run the trial of child run `run_id` on CPU for as many epochs as it recorded."""
    client = client_for(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise SpecError(f"RUN_ID {run_id!r}: no such run in {tracking_uri} ({exc.message})") from None
    if c.TRIAL_ID not in run.data.tags:
        raise SpecError(f"RUN_ID {run_id!r}: not a trial (child) run; pick a child run of a study")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, c.TRIAL_SPEC_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise SpecError(f"RUN_ID {run_id!r}: its {c.TRIAL_SPEC_ARTIFACT} artifact is missing ({exc})") from None
        spec = spec_from_dict(yaml.safe_load(Path(local).read_text()), source=c.TRIAL_SPEC_ARTIFACT)
    history = recorded_history(client, run)
    epochs = max((max(steps) for steps in history.values() if steps), default=0)
    if epochs == 0:
        raise SpecError(f"RUN_ID {run_id!r}: recorded no epochs, nothing to compare")

    reproduced: dict[int, dict[str, float]] = {}

    def sink(metrics: dict[str, Any], where: Any) -> None:
        reproduced[int(metrics["epoch"])] = numeric_metrics(metrics)

    kind_name = kind_for(spec)
    kind = TRIAL_KINDS.get(kind_name)
    extra: dict[str, Any] = {}
    if spec.compress is not None:
        from harness.compress.teacher import teacher_of

        extra["teacher"] = teacher_of(client, run, tracking_uri)
    # A learning curve's value at an epoch depends on the full budget: such kinds replay all.
    kind.fit(spec, sink, stop_after=None if kind.reproduce_all_epochs else epochs, accelerator="cpu", **extra)
    return [
        Comparison(epoch, key, steps[epoch], reproduced.get(epoch, {}).get(key, float("nan")))
        for key, steps in sorted(history.items())
        if not key.startswith(UNCOMPARED)
        for epoch in sorted(steps)
    ]
