"""Outlier detectors: z-score and IQR (thresholds fitted on the train split, per channel), Hampel
(a windowed median and median absolute deviation, per series) and model residuals (distance from
a Savitzky-Golay fit, in units of the train split's residual scale).

Each marks points; its `action` clips them, flags them in an extra channel, or drops the train
samples that contain any (val and test are never dropped: a score must cover every sample).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from lightning_modules.data.datasets import DataKind
from lightning_modules.data.preprocessing import OutlierStep, Step, StepConfig, channels_last, register_step
from lightning_modules.data.signal import odd_window_above_order

Action = Literal["clip", "flag", "drop"]
MAD_TO_STD = 1.4826  # the MAD of a normal distribution times this is its standard deviation


def _per_channel_table(x: np.ndarray, kind: DataKind) -> np.ndarray:
    moved = channels_last(x, kind)
    return moved.reshape(-1, moved.shape[-1])


def _broadcast(values: np.ndarray, x: np.ndarray, kind: DataKind) -> np.ndarray:
    """Per-channel values shaped to broadcast against `x`."""
    return values.reshape(1, -1, *([1] * (x.ndim - 2))) if kind == "image" else values


class BoundsOutliers(OutlierStep):
    """Points outside per-channel bounds learned from the fit data; clipping moves them to the bound."""

    def outliers(self, x: np.ndarray) -> np.ndarray:
        lo, hi = _broadcast(self.low_, x, self.kind), _broadcast(self.high_, x, self.kind)
        return (x < lo) | (x > hi)

    def replacement(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, _broadcast(self.low_, x, self.kind), _broadcast(self.high_, x, self.kind))


class ZScoreOutliers(BoundsOutliers):
    """|x - mean| > threshold * std, mean and std per channel of the fit data."""

    def __init__(self, threshold: float = 3.0, action: Action = "clip", kind: DataKind = "tabular") -> None:
        self.threshold, self.action, self.kind = threshold, action, kind

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> ZScoreOutliers:
        table = _per_channel_table(x, self.kind)
        mean, std = table.mean(axis=0), table.std(axis=0)
        self.low_, self.high_ = mean - self.threshold * std, mean + self.threshold * std
        return self


class IqrOutliers(BoundsOutliers):
    """Outside [Q1 - k IQR, Q3 + k IQR] (Tukey's fences), quartiles per channel of the fit data."""

    def __init__(self, k: float = 1.5, action: Action = "clip", kind: DataKind = "tabular") -> None:
        self.k, self.action, self.kind = k, action, kind

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> IqrOutliers:
        q1, q3 = np.percentile(_per_channel_table(x, self.kind), [25, 75], axis=0)
        self.low_, self.high_ = q1 - self.k * (q3 - q1), q3 + self.k * (q3 - q1)
        return self


def rolling_median_mad(x: np.ndarray, half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and median absolute deviation of each point's window [t - k, t + k] along axis 1
    (ends padded with the end values); one channel at a time to bound memory."""
    from numpy.lib.stride_tricks import sliding_window_view

    median, mad = np.empty_like(x, np.float64), np.empty_like(x, np.float64)
    for c in range(x.shape[-1]):
        padded = np.pad(x[..., c].astype(np.float64), ((0, 0), (half_width, half_width)), mode="edge")
        windows = sliding_window_view(padded, 2 * half_width + 1, axis=1)
        med = np.median(windows, axis=-1)
        median[..., c] = med
        mad[..., c] = np.median(np.abs(windows - med[..., None]), axis=-1)
    return median, mad


class HampelOutliers(OutlierStep):
    """Hampel filter: |x - median| > threshold * 1.4826 * MAD within a window of 2 k + 1 steps.

    Local and robust: a burst of spikes shorter than k barely moves the window's median and MAD,
    where it inflates a global standard deviation. Clipping replaces an outlier by the median.
    """

    def __init__(self, half_width: int = 5, threshold: float = 3.0, action: Action = "clip") -> None:
        self.half_width, self.threshold, self.action, self.kind = half_width, threshold, action, "sequence"

    def _stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        median, mad = rolling_median_mad(x, self.half_width)
        return median, np.abs(x - median) > self.threshold * MAD_TO_STD * mad + 1e-12

    def outliers(self, x: np.ndarray) -> np.ndarray:
        return self._stats(x)[1]

    def replacement(self, x: np.ndarray) -> np.ndarray:
        return self._stats(x)[0]


class ResidualOutliers(OutlierStep):
    """Model residuals: the distance of each point from a Savitzky-Golay fit of its series
    (`window`, `order`), against `threshold` times the residuals' robust scale (1.4826 * MAD) per
    channel of the fit data. Clipping replaces an outlier by the model's value."""

    def __init__(self, window: int = 11, order: int = 2, threshold: float = 4.0, action: Action = "clip") -> None:
        self.window, self.order, self.threshold, self.action, self.kind = window, order, threshold, action, "sequence"

    def _model(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import savgol_filter

        if x.shape[1] < self.window:
            raise ValueError(f"a residual model window of {self.window} needs sequences that long, given {x.shape[1]}")
        return savgol_filter(x.astype(np.float64), self.window, self.order, axis=1, mode="interp")

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> ResidualOutliers:
        residual = (x - self._model(x)).reshape(-1, x.shape[-1])
        center = np.median(residual, axis=0)
        self.scale_ = MAD_TO_STD * np.median(np.abs(residual - center), axis=0) + 1e-12
        return self

    def outliers(self, x: np.ndarray) -> np.ndarray:
        return np.abs(x - self._model(x)) > self.threshold * self.scale_

    def replacement(self, x: np.ndarray) -> np.ndarray:
        return self._model(x)


@register_step
class ZScoreConfig(StepConfig):
    """Outliers beyond `threshold` standard deviations of the train split."""

    name: Literal["zscore"] = "zscore"
    kinds: ClassVar[tuple[DataKind, ...]] = ("tabular", "sequence")
    fitted: ClassVar[bool] = True
    threshold: float = Field(3.0, gt=0.0)
    action: Action = "clip"

    def transformer(self, kind: DataKind) -> Step:
        return ZScoreOutliers(self.threshold, self.action, kind)


@register_step
class IqrConfig(StepConfig):
    """Outliers beyond Tukey's fences of the train split."""

    name: Literal["iqr"] = "iqr"
    kinds: ClassVar[tuple[DataKind, ...]] = ("tabular", "sequence")
    fitted: ClassVar[bool] = True
    k: float = Field(1.5, gt=0.0, description="fence distance in interquartile ranges")
    action: Action = "clip"

    def transformer(self, kind: DataKind) -> Step:
        return IqrOutliers(self.k, self.action, kind)


@register_step
class HampelConfig(StepConfig):
    """Windowed median / MAD outliers of each series."""

    name: Literal["hampel"] = "hampel"
    kinds: ClassVar[tuple[DataKind, ...]] = ("sequence",)
    half_width: int = Field(5, ge=1, description="window of 2 * half_width + 1 steps")
    threshold: float = Field(3.0, gt=0.0, description="in robust standard deviations")
    action: Action = "clip"

    def transformer(self, kind: DataKind) -> Step:
        return HampelOutliers(self.half_width, self.threshold, self.action)


@register_step
class ResidualConfig(StepConfig):
    """Outliers far from a Savitzky-Golay model of each series."""

    name: Literal["residual"] = "residual"
    kinds: ClassVar[tuple[DataKind, ...]] = ("sequence",)
    fitted: ClassVar[bool] = True
    order: int = Field(2, ge=0, le=10, description="the model's polynomial order")
    window: int = Field(11, ge=3, description="the model's window: odd, larger than `order`")
    threshold: float = Field(4.0, gt=0.0, description="in robust standard deviations of the residuals")
    action: Action = "clip"

    _window = field_validator("window")(odd_window_above_order)

    def transformer(self, kind: DataKind) -> Step:
        return ResidualOutliers(self.window, self.order, self.threshold, self.action)
