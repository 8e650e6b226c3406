"""Statistics for comparing search strategies over seeds: best-so-far curves on a common
budget grid, bootstrap confidence intervals, ranks, time-to-target and paired tests.

Everything here works on plain arrays; a curve is one seed's run of one strategy. Values are
oriented by `mode` ("min" or "max"): "better" means lower for min, higher for max.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def _sign(mode: str) -> float:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max' (given {mode!r})")
    return 1.0 if mode == "min" else -1.0


def best_so_far(values: np.ndarray, mode: str) -> np.ndarray:
    """Running best of `values` in order; NaN (a failed trial) never improves the best."""
    sign = _sign(mode)
    oriented = np.where(np.isfinite(values), sign * np.asarray(values, dtype=float), np.inf)
    running = np.minimum.accumulate(oriented) if len(oriented) else oriented
    return np.where(np.isfinite(running), sign * running, np.nan)


def on_grid(xs: np.ndarray, best: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A best-so-far step curve observed at (`xs`, `best`) read at each budget in `grid`:
    the best reached with at most that budget spent; NaN before the first observation."""
    xs, best = np.asarray(xs, dtype=float), np.asarray(best, dtype=float)
    idx = np.searchsorted(xs, grid, side="right") - 1
    out = np.full(len(grid), np.nan)
    ok = idx >= 0
    out[ok] = best[idx[ok]]
    return out


@dataclass(frozen=True)
class Band:
    """Mean over seeds and its bootstrap confidence interval, per budget point."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def bootstrap_band(curves: np.ndarray, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Band:
    """Percentile bootstrap CI of the mean over seeds (rows) at each budget point (column).

    Budget points where some seeds have no value yet use the seeds that have one.
    """
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    rng = np.random.default_rng(seed)
    n_seeds, n_points = curves.shape
    picks = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    mean = np.full(n_points, np.nan)
    low, high = mean.copy(), mean.copy()
    alpha = (1 - confidence) / 2
    for j in range(n_points):
        column = curves[:, j]
        if not np.isfinite(column).any():
            continue
        mean[j] = np.nanmean(column)
        boot = np.nanmean(column[picks], axis=1)
        low[j], high[j] = np.nanquantile(boot, [alpha, 1 - alpha])
    return Band(mean, low, high)


def mean_ranks(curves: dict[str, np.ndarray], mode: str) -> dict[str, float]:
    """Mean rank of each strategy (1 = best), ranking strategies within each seed at each
    budget point and averaging over seeds and budget points; ties share the average rank.

    `curves[strategy]` is (seeds x budget points); seeds are paired by row.
    """
    names = list(curves)
    stacked = np.stack([np.asarray(curves[n], dtype=float) for n in names])  # strategy x seed x point
    oriented = _sign(mode) * stacked
    oriented = np.where(np.isfinite(oriented), oriented, np.inf)  # nothing yet ranks last
    ranks = stats.rankdata(oriented, axis=0)
    return {name: float(ranks[i].mean()) for i, name in enumerate(names)}


def time_to_target(xs: np.ndarray, best: np.ndarray, target: float, mode: str) -> float | None:
    """The first budget at which the best-so-far reaches `target`; None if it never does."""
    sign = _sign(mode)
    reached = np.flatnonzero(np.isfinite(best) & (sign * np.asarray(best) <= sign * target))
    return float(np.asarray(xs)[reached[0]]) if len(reached) else None


def regret(best: np.ndarray | float, optimum: float, mode: str) -> np.ndarray | float:
    """How far the best value is from the known optimum (>= 0 when the optimum is right)."""
    return _sign(mode) * (np.asarray(best, dtype=float) - optimum)


@dataclass(frozen=True)
class TestResult:
    test: str  # "wilcoxon" (paired over seeds) or "mannwhitney" (unpaired)
    statistic: float
    p_value: float  # one-sided: small when `candidate` is better than `baseline`


def compare_to_baseline(candidate: np.ndarray, baseline: np.ndarray, mode: str) -> TestResult:
    """One-sided test that `candidate`'s final values are better than `baseline`'s.

    Paired (Wilcoxon signed-rank) when both have a finite value for the same seeds, in the same
    order; otherwise unpaired (Mann-Whitney U) over the finite values of each.
    """
    a, b = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    alternative = "less" if mode == "min" else "greater"
    _sign(mode)
    if len(a) == len(b) and np.isfinite(a).all() and np.isfinite(b).all():
        if np.allclose(a, b):
            return TestResult("wilcoxon", 0.0, 1.0)
        res = stats.wilcoxon(a, b, alternative=alternative, zero_method="zsplit")
        return TestResult("wilcoxon", float(res.statistic), float(res.pvalue))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return TestResult("mannwhitney", float("nan"), float("nan"))
    res = stats.mannwhitneyu(a, b, alternative=alternative)
    return TestResult("mannwhitney", float(res.statistic), float(res.pvalue))
