"""A trial of an objective study: evaluate the benchmark function once per epoch-equivalent,
report it to Ray Tune with a checkpoint (so that schedulers stop, pause and resume it and PBT
clones it like a training trial), and never train anything.

Ray workers import this module: it imports neither the spec nor the training stack, so an
objective trial starts in a moment.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.objectives.functions import REGRET_METRIC, Function, observe
from harness.tracking import contract as c

if TYPE_CHECKING:
    from harness.study import StudySpec

CHECKPOINT_FILE = "objective.json"

Sink = Callable[[dict[str, Any], Path], None]


@dataclass(frozen=True)
class ObjectivePlan:
    """What an objective trial needs, resolved from the validated spec on the driver."""

    function: Function
    optimum: float
    objective: dict[str, Any]  # the objective section's values: name, noise, x1, ...
    seed: int
    max_epochs: int

    @classmethod
    def from_spec(cls, spec: StudySpec) -> ObjectivePlan:
        from harness.objectives import OBJECTIVES

        assert spec.objective is not None, "an objective plan needs a spec with an objective section"
        entry = OBJECTIVES.get(spec.objective.name)
        objective = spec.objective.model_dump(mode="json")
        return cls(entry.evaluate, entry.optimum, objective, spec.seed, spec.train.max_epochs)

    def with_values(self, config: dict[str, Any]) -> ObjectivePlan:
        """One trial's plan: its sampled values by dotted path applied. The space was checked
        at load time, so every value it yields is valid; data, model and the rest of train
        do not affect an objective."""
        objective, seed, max_epochs = dict(self.objective), self.seed, self.max_epochs
        for path, value in config.items():
            if path.startswith("objective."):
                objective[path.removeprefix("objective.")] = value
            elif path == "seed":
                seed = int(value)
            elif path == "train.max_epochs":
                max_epochs = int(value)
        return replace(self, objective=objective, seed=seed, max_epochs=max_epochs)


def run_objective(plan: ObjectivePlan, sink: Sink, start_epoch: int = 0) -> None:
    """Report epochs `start_epoch + 1 .. max_epochs`: `sink(metrics, folder)` gets each
    epoch's metrics and a folder holding its checkpoint."""
    cost = float(plan.objective.get("cost_s") or 0.0)
    for epoch in range(start_epoch + 1, plan.max_epochs + 1):
        if cost:
            time.sleep(cost)
        metrics = {"epoch": epoch, **observe(plan.function, plan.optimum, plan.objective, plan.seed, epoch, plan.max_epochs)}
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / CHECKPOINT_FILE).write_text(json.dumps({"epoch": epoch}))
            sink(metrics, Path(tmp))


def checkpoint_epoch(folder: Path) -> int:
    """The last epoch a checkpoint folder records."""
    return int(json.loads((folder / CHECKPOINT_FILE).read_text())["epoch"])


def ray_objective_trainable(config: dict[str, Any], plan: ObjectivePlan) -> None:
    """Ray Tune function trainable: `config` holds the sampled values by dotted path.

    A restored trial (resume, or PBT's exploit with a mutated config) continues after its
    checkpoint's epoch and evaluates the config it is given now.
    """
    import ray
    from ray import tune

    from harness.trial.retries import refuse_a_retry_of_an_error

    refuse_a_retry_of_an_error()
    where = {c.NODE_ID: ray.get_runtime_context().get_node_id(), c.DEVICE: "cpu"}

    def report(metrics: dict[str, Any], folder: Path) -> None:
        tune.report({**metrics, **where}, checkpoint=tune.Checkpoint.from_directory(str(folder)))

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = checkpoint_epoch(Path(folder))
    run_objective(plan.with_values(config), report, start_epoch=start)


def objective_trainable(spec: StudySpec) -> Any:
    """The Ray Tune trainable of an objective study."""
    from ray import tune

    return tune.with_parameters(ray_objective_trainable, plan=ObjectivePlan.from_spec(spec))


def chosen_trial_metrics(spec: StudySpec, result: Any) -> dict[str, float]:
    """What the parent run of an objective study records instead of a test-split score: the
    known optimum and the regret of the chosen trial (noise-free, at its last epoch)."""
    metrics = {"objective/optimum": ObjectivePlan.from_spec(spec).optimum}
    regret = result.metrics.get(REGRET_METRIC)
    if isinstance(regret, (int, float)):
        metrics[f"best/{REGRET_METRIC}"] = float(regret)
    return metrics
