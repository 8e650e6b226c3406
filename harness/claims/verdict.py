"""The rule that decides a claim: per seed, the effect in the claim's direction (already
signed, so that larger means "as claimed", and net of any margin or threshold); a one-sided
Wilcoxon signed-rank test over seeds each way (scipy), at `alpha`.

- holds: the effects are significantly above zero;
- does not hold: significantly below zero (the opposite is true here);
- inconclusive: neither, or fewer seeds than `min_seeds` (the smallest one-sided Wilcoxon p
  with n seeds all agreeing is 2^-n: five seeds are needed to reach 0.05).
A run whose arm failed (a diverged trial, say) counts as the worst outcome for that arm: an
infinite effect, which the rank test handles as the largest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
MIN_SEEDS = 5
HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    p_holds: float
    p_opposite: float


def confidence_interval(effects: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval of the finite effects (infinite ones make the mean infinite)."""
    from scipy import stats

    if len(effects) == 0:
        return math.nan, math.nan, math.nan
    if not np.isfinite(effects).all():
        mean = float(np.mean(effects))
        return mean, (mean if math.isinf(mean) else math.nan), (mean if math.isinf(mean) else math.nan)
    mean = float(effects.mean())
    if len(effects) < 2 or float(effects.std(ddof=1)) == 0.0:
        return mean, mean, mean
    low, high = stats.t.interval(level, len(effects) - 1, loc=mean, scale=stats.sem(effects))
    return mean, float(low), float(high)


def decide(effects: list[float | None], *, alpha: float = ALPHA, min_seeds: int = MIN_SEEDS) -> Verdict:
    """The verdict on per-seed effects (None: a seed where both arms failed, left out)."""
    from scipy import stats

    values = np.array([e for e in effects if e is not None and not math.isnan(e)], dtype=float)
    n = len(values)
    mean, low, high = confidence_interval(values)
    if n < min_seeds:
        return Verdict(INCONCLUSIVE, f"too few seeds to say ({n} < {min_seeds})", n, mean, low, high, math.nan, math.nan)
    if np.all(values == 0):
        return Verdict(INCONCLUSIVE, "no difference in any seed", n, mean, low, high, 1.0, 1.0)
    p_holds = float(stats.wilcoxon(values, alternative="greater").pvalue)
    p_opposite = float(stats.wilcoxon(values, alternative="less").pvalue)
    if p_holds < alpha:
        return Verdict(HOLDS, f"effect > 0 in the claimed direction (p = {p_holds:.3g})", n, mean, low, high, p_holds, p_opposite)
    if p_opposite < alpha:
        return Verdict(DOES_NOT_HOLD, f"the opposite holds (p = {p_opposite:.3g})", n, mean, low, high, p_holds, p_opposite)
    return Verdict(INCONCLUSIVE, f"neither way at p < {alpha} (p = {p_holds:.3g} for, {p_opposite:.3g} against)",
                   n, mean, low, high, p_holds, p_opposite)
