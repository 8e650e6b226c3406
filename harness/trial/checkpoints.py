"""When a training trial writes a checkpoint with its epoch report.

A checkpoint is what resume, PBT and the pausing schedulers continue from, and the final one
is what the chosen trial is tested on. Written every epoch it was most of a small trial's
overhead (docs/benchmarks.md, "Checkpoint cadence"), so a trial writes one only:

- after its last epoch (the end of `max_epochs`, or an early stop): the weights it ends with;
- after every epoch its scheduler may act on (`SchedulerEntry.acts_after`: ASHA's rungs, PBT's
  perturbation points, every epoch for HyperBand, BOHB and the median rule); and every epoch
  under a study budget, which may cut a trial anywhere;
- otherwise every `train.checkpoint_every` epochs, or by default (`auto`) once the time since
  the last checkpoint is both 20 times what writing that one took and at least 10 seconds.

Resume stays exact between checkpoints: every epoch reseeds from (seed, epoch), so the epochs a
restored trial trains again repeat the same arithmetic, and the MLflow history skips the
steps it already has.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harness.search.strategies import SCHEDULERS, EpochSet, resolve_strategy
from harness.study import StudySpec
from harness.tracking import contract as c

# `auto`: at most about 1/20 of a trial's time goes to checkpoints, and a killed trial loses at
# most max(10 s, 20 x a checkpoint's cost) of training.
COST_RATIO = 20.0
MIN_INTERVAL_S = 10.0


@dataclass
class CheckpointCadence:
    """Decides, epoch by epoch, whether the report carries a checkpoint."""

    max_epochs: int
    every: int | None = None  # None: auto
    required: EpochSet = field(default=lambda epoch: False)
    last_end: float = field(default_factory=time.monotonic)
    last_cost: float = 0.0

    def due(self, metrics: dict[str, Any], now: float | None = None) -> bool:
        epoch = int(metrics.get(c.EPOCH, 0))
        if epoch >= self.max_epochs or metrics.get("stop_reason") or self.required(epoch):
            return True
        if self.every is not None:
            return epoch % self.every == 0
        elapsed = (time.monotonic() if now is None else now) - self.last_end
        return elapsed >= max(MIN_INTERVAL_S, COST_RATIO * self.last_cost)

    def written(self, started: float, now: float | None = None) -> None:
        """Record a checkpoint that took from `started` (time.monotonic) until now."""
        self.last_end = time.monotonic() if now is None else now
        self.last_cost = self.last_end - started


def cadence_for(spec: StudySpec) -> CheckpointCadence:
    """The checkpoint cadence of a trial of this (resolved) spec."""
    _, scheduler = resolve_strategy(spec)
    required = SCHEDULERS.get(scheduler).acts_after(spec)
    if spec.search.budget_epochs is not None or spec.search.time_budget_s is not None:
        required = _every
    return CheckpointCadence(spec.train.max_epochs, spec.train.checkpoint_every, required)


def _every(epoch: int) -> bool:
    return True
