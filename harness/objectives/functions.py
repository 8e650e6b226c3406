"""The benchmark functions themselves, with their optima: plain Python, no imports beyond the
standard library (and the constants of the MLflow contract), so that a Ray worker evaluating them starts in a moment (the registry with
the typed configs is `harness.objectives`)."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable
from typing import Any

from harness.tracking.contract import OBJECTIVE_REGRET as REGRET_METRIC
from harness.tracking.contract import OBJECTIVE_VALUE as OBJECTIVE_METRIC

# f(x, epoch, budget): the noise-free value after `epoch` of `budget` epochs.
Function = Callable[[list[float], int, int], float]


def branin(x: list[float]) -> float:
    """Branin-Hoo on [-5, 10] x [0, 15]; three global minima of 5 / (4 pi)."""
    x1, x2 = x
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


BRANIN_OPTIMUM = 5 / (4 * math.pi)
BRANIN_ARGMINS = ((-math.pi, 12.275), (math.pi, 2.275), (3 * math.pi, 2.475))

_H6_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H6_A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
_H6_P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)
# The minimizer and minimum to double precision: a local refinement of the published 6-digit
# point (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573), so that regret is exact.
H6_ARGMIN = (0.20168951038, 0.15001069147, 0.47687397337, 0.27533242885, 0.31165161656, 0.65730053085)
H6_OPTIMUM = -3.322368011415515


def hartmann6(x: list[float]) -> float:
    """Hartmann-6 on [0, 1]^6: six local minima, one global minimum of about -3.32237."""
    total = 0.0
    for alpha, a_row, p_row in zip(_H6_ALPHA, _H6_A, _H6_P):
        total += alpha * math.exp(-sum(a * (xj - p) ** 2 for a, xj, p in zip(a_row, x, p_row)))
    return -total


CURVE_EXPONENT = 0.5


def learning_curve(x: list[float], epoch: int, budget: int) -> float:
    """Hartmann-6 at full budget plus a power-law gap that closes as epochs pass.

    gap = c(x) * ((budget / epoch)^0.5 - 1) / (budget^0.5 - 1), with c(x) = 0.5 + 2 * mean(x):
    c(x) after the first epoch, exactly 0 at `budget`. How fast a point converges depends on
    x differently from where it ends, so early rankings only partly predict final ones, as
    with real learning curves.
    """
    final = hartmann6(x)
    if budget <= 1 or epoch >= budget:
        return final
    scale = 0.5 + 2.0 * sum(x) / len(x)
    gap = ((budget / epoch) ** CURVE_EXPONENT - 1) / (budget**CURVE_EXPONENT - 1)
    return final + scale * gap


# Single-fidelity functions in the (x, epoch, budget) form: the same value at every epoch.
def branin_at(x: list[float], epoch: int, budget: int) -> float:
    return branin(x)


def hartmann6_at(x: list[float], epoch: int, budget: int) -> float:
    return hartmann6(x)


def inputs(values: dict[str, Any]) -> list[float]:
    """The function's arguments from an objective's values: the fields x1, x2, ... in order."""
    names = sorted((k for k in values if k[:1] == "x" and k[1:].isdigit()), key=lambda k: int(k[1:]))
    return [float(values[name]) for name in names]


def noise_draw(values: dict[str, Any], seed: int, epoch: int) -> float:
    """A standard normal draw fixed by (study seed, the trial's objective values, epoch):
    reproducible, the same after a resume, and different between trials."""
    # The simulated cost is not part of the point: the same point draws the same noise at any cost.
    canonical = {k: (v if k == "name" else float(v)) for k, v in values.items() if k != "cost_s"}
    key = json.dumps([seed, epoch, canonical], sort_keys=True)
    digest = hashlib.sha256(key.encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).gauss(0.0, 1.0)


def observe(function: Function, optimum: float, values: dict[str, Any], seed: int, epoch: int, budget: int) -> dict:
    """What a trial reports after `epoch` of `budget` epochs: the observed value (with the
    objective's Gaussian noise, standard deviation `values["noise"]`) and the noise-free regret."""
    true_value = function(inputs(values), epoch, budget)
    noise = float(values.get("noise", 0.0))
    observed = true_value + (noise * noise_draw(values, seed, epoch) if noise > 0 else 0.0)
    # Rounding leaves about 1e-16 below the optimum at an exact minimizer; regret is >= 0.
    return {OBJECTIVE_METRIC: observed, REGRET_METRIC: max(0.0, true_value - optimum)}
