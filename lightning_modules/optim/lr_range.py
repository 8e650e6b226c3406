"""The learning-rate range test (Smith, 2017, "Cyclical Learning Rates for Training Neural Networks").

Train with the LR growing exponentially from `min_lr` to `max_lr`, one optimizer step per LR,
and record the loss. The loss is smoothed with a bias-corrected exponential moving average
(weight `smoothing` on the past); the sweep stops early once the smoothed loss exceeds
`diverge_factor` times its minimum so far, or is not finite. The suggested LR is the LR at
the minimum of the smoothed loss divided by 10: an order of magnitude below the point where
the loss stops decreasing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SUGGESTION_DIVISOR = 10.0


@dataclass(frozen=True)
class LRRange:
    """The sweep as run: one row per step taken, and the suggestion read from it."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    min_loss_lr: float  # LR at the minimum of the smoothed loss
    suggestion: float  # min_loss_lr / SUGGESTION_DIVISOR
    diverged: bool  # the sweep stopped before max_lr because the loss blew up


def suggest_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> tuple[float, float]:
    """(LR at the smoothed-loss minimum, that LR / 10)."""
    if len(lrs) < 2 or len(lrs) != len(smoothed):
        raise ValueError(f"the LR range test needs at least 2 finite steps (got {len(smoothed)})")
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    return lrs[best], lrs[best] / SUGGESTION_DIVISOR


def lr_range_test(
    step: Callable[[float], float],
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    num_steps: int = 300,
    smoothing: float = 0.9,
    diverge_factor: float = 4.0,
) -> LRRange:
    """Run the sweep; `step(lr)` takes one optimizer step at `lr` and returns its loss."""
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr (given {min_lr}, {max_lr})")
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2 (given {num_steps})")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1) (given {smoothing})")
    if diverge_factor <= 1:
        raise ValueError(f"diverge_factor must be > 1 (given {diverge_factor})")
    growth = (max_lr / min_lr) ** (1.0 / (num_steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, best, diverged = 0.0, math.inf, False
    for i in range(num_steps):
        lr = min_lr * growth**i
        loss = float(step(lr))
        if not math.isfinite(loss):
            diverged = True
            break
        average = smoothing * average + (1.0 - smoothing) * loss
        value = average / (1.0 - smoothing ** (i + 1))
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(value)
        best = min(best, value)
        if value > diverge_factor * best:
            diverged = True
            break
    min_loss_lr, suggestion = suggest_lr(lrs, smoothed)
    return LRRange(lrs, losses, smoothed, min_loss_lr, suggestion, diverged)
