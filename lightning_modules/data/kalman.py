"""Kalman smoothing of sequences under a local-level model (a random walk seen through noise):

    level_t = level_{t-1} + eta_t,  eta ~ N(0, q);     y_t = level_t + eps_t,  eps ~ N(0, r).

Model-based state estimation where Savitzky-Golay is a local polynomial fit: the smoother's
weights follow from the noise variances, which the step estimates by maximum likelihood on the
train split (statsmodels' `UnobservedComponents`, per channel) or takes as given. Applying it is
the Kalman filter and, with `smoother`, the Rauch-Tung-Striebel pass backwards, run for every
series and channel at once (the same recursions statsmodels runs one series at a time; a test
holds them equal).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from lightning_modules.data.datasets import DataKind
from lightning_modules.data.preprocessing import SplitArrays, Step, StepConfig, register_step

# statsmodels' approximate diffuse start: the first level is unknown, variance 1e6.
INITIAL_VARIANCE = 1e6
# Series per channel whose likelihood the variances are fitted on (their median is kept).
FIT_SERIES = 16


def steady_state_gain(q: float, r: float) -> float:
    """The filter's limiting gain: the predicted variance P solves P^2 - qP - qr = 0, K = P / (P + r)."""
    p = (q + math.sqrt(q * q + 4.0 * q * r)) / 2.0
    return p / (p + r)


def local_level(y: np.ndarray, q: np.ndarray, r: np.ndarray, smooth: bool = True) -> np.ndarray:
    """Filtered (or smoothed) levels of `y` (series, time) with per-series variances q and r."""
    series, steps = y.shape
    level, variance = np.zeros(series), np.full(series, INITIAL_VARIANCE)
    filtered, filtered_var, predicted_var = np.empty_like(y), np.empty_like(y), np.empty_like(y)
    for t in range(steps):
        predicted_var[:, t] = variance + (q if t else 0.0)  # the initial variance is the first prediction's
        gain = predicted_var[:, t] / (predicted_var[:, t] + r)
        level = level + gain * (y[:, t] - level)
        variance = (1.0 - gain) * predicted_var[:, t]
        filtered[:, t], filtered_var[:, t] = level, variance
    if not smooth:
        return filtered
    out = filtered.copy()
    for t in range(steps - 2, -1, -1):
        weight = filtered_var[:, t] / predicted_var[:, t + 1]
        out[:, t] = filtered[:, t] + weight * (out[:, t + 1] - filtered[:, t])
    return out


def fit_variances(series: np.ndarray) -> tuple[float, float]:
    """(q, r) of a local-level model by maximum likelihood (statsmodels), the median over series."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    fits = []
    for y in series[:FIT_SERIES]:
        result = UnobservedComponents(y.astype(np.float64), level="llevel").fit(disp=False)
        params = dict(zip(result.model.param_names, result.params))
        fits.append((params["sigma2.level"], params["sigma2.irregular"]))
    q, r = np.median(np.array(fits), axis=0)
    return float(max(q, 1e-12)), float(max(r, 1e-12))


class KalmanSmoother(Step):
    """Local-level Kalman smoothing per channel; variances fitted on the train split unless given."""

    def __init__(self, level_variance: float | None = None, noise_variance: float | None = None, smoother: bool = True) -> None:
        self.level_variance, self.noise_variance, self.smoother = level_variance, noise_variance, smoother

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> KalmanSmoother:
        channels = x.shape[-1]
        if self.level_variance is not None and self.noise_variance is not None:
            self.variances_ = [(self.level_variance, self.noise_variance)] * channels
        else:
            self.variances_ = [fit_variances(x[:, :, c]) for c in range(channels)]
        return self

    def fit_split(self, data: SplitArrays) -> KalmanSmoother:
        return self.fit(data.x)

    def statistics(self, splits: dict[str, SplitArrays]) -> dict[str, float]:
        # The fitted noise-to-signal ratio per channel (log10): how hard the step smooths.
        return {f"log10_noise_ratio_ch{c}": math.log10(r / q) for c, (q, r) in enumerate(self.variances_)}

    def transform(self, x: np.ndarray) -> np.ndarray:
        n, steps, channels = x.shape
        q = np.repeat([v[0] for v in self.variances_], n)
        r = np.repeat([v[1] for v in self.variances_], n)
        series = np.moveaxis(x.astype(np.float64), -1, 0).reshape(channels * n, steps)
        out = local_level(series, q, r, self.smoother).reshape(channels, n, steps)
        return np.ascontiguousarray(np.moveaxis(out, 0, -1)).astype(np.float32)


@register_step
class KalmanConfig(StepConfig):
    """Kalman smoothing under a local-level model; the noise variances are fitted on the train
    split by maximum likelihood unless both are given."""

    name: Literal["kalman"] = "kalman"
    kinds: ClassVar[tuple[DataKind, ...]] = ("sequence",)
    fitted: ClassVar[bool] = True
    level_variance: float | None = Field(None, gt=0, description="q: variance of the level's step (fitted if unset)")
    noise_variance: float | None = Field(None, gt=0, description="r: variance of the observation noise (fitted if unset)")
    smoother: bool = Field(True, description="two-sided (Rauch-Tung-Striebel); false: the causal filter alone")

    @model_validator(mode="after")
    def _both_or_neither(self) -> KalmanConfig:
        if (self.level_variance is None) != (self.noise_variance is None):
            raise ValueError("give both level_variance and noise_variance, or neither (fitted on the train split)")
        return self

    def transformer(self, kind: DataKind) -> Step:
        return KalmanSmoother(self.level_variance, self.noise_variance, self.smoother)
