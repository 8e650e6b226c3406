"""Signal steps along the time axis of sequences (n, time, channels): anti-alias filtering and
downsampling, detrending, Savitzky-Golay smoothing and a moving average. All are stateless: each
sample is processed on its own, so nothing is learned from other splits."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from lightning_modules.data.datasets import DataKind
from lightning_modules.data.preprocessing import Step, StepConfig, register_step

SEQUENCE: tuple[DataKind, ...] = ("sequence",)


def _check_length(x: np.ndarray, needed: int, what: str) -> None:
    if x.shape[1] < needed:
        raise ValueError(f"{what} needs sequences of at least {needed} steps, given {x.shape[1]}")


class Downsample(Step):
    """Keep every `factor`-th step; with `antialias`, first low-pass filter below the new Nyquist
    frequency (a zero-phase FIR filter, scipy's `decimate`), so that faster content cannot alias
    into the kept band. Without it: plain subsampling, which aliases."""

    def __init__(self, factor: int = 2, antialias: bool = True) -> None:
        self.factor, self.antialias = factor, antialias

    def transform(self, x: np.ndarray) -> np.ndarray:
        if not self.antialias:
            return np.ascontiguousarray(x[:, :: self.factor])
        from scipy.signal import decimate

        _check_length(x, 2 * self.factor + 1, f"downsample by {self.factor}")
        return decimate(x.astype(np.float64), self.factor, ftype="fir", axis=1, zero_phase=True).astype(np.float32)


@register_step
class DownsampleConfig(StepConfig):
    """Anti-alias filter, then keep every `factor`-th sample."""

    name: Literal["downsample"] = "downsample"
    kinds: ClassVar[tuple[DataKind, ...]] = SEQUENCE
    factor: int = Field(2, ge=2, description="keep one step in `factor`")
    antialias: bool = Field(True, description="low-pass filter first; false shows aliasing")

    def transformer(self, kind: DataKind) -> Step:
        return Downsample(self.factor, self.antialias)


class Detrend(Step):
    """Remove each series' mean (`constant`: DC removal) or least-squares line (`linear`)."""

    def __init__(self, kind: Literal["constant", "linear"] = "constant") -> None:
        self.kind = kind

    def transform(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import detrend

        return detrend(x.astype(np.float64), axis=1, type=self.kind).astype(np.float32)


@register_step
class DetrendConfig(StepConfig):
    """DC removal (`constant`) or linear detrending of every series."""

    name: Literal["detrend"] = "detrend"
    kinds: ClassVar[tuple[DataKind, ...]] = SEQUENCE
    kind: Literal["constant", "linear"] = "constant"

    def transformer(self, kind: DataKind) -> Step:
        return Detrend(self.kind)


def odd_window_above_order(window: int, info: ValidationInfo) -> int:
    """A polynomial window's check: odd (a centre point) and longer than the polynomial order
    (declared before `window`, so already validated)."""
    if window % 2 == 0:
        raise ValueError("window must be odd")
    order = info.data.get("order")
    if order is not None and window <= order:
        raise ValueError(f"window must be larger than order ({order})")
    return window


class SavitzkyGolay(Step):
    """Least-squares fit of a polynomial of `order` in a sliding `window` (odd); the value (or its
    `deriv`-th derivative, per step) at the centre replaces each point. Keeps peaks' heights and
    widths better than a moving average of the same window."""

    def __init__(self, window: int = 11, order: int = 3, deriv: int = 0) -> None:
        self.window, self.order, self.deriv = window, order, deriv

    def transform(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import savgol_filter

        _check_length(x, self.window, f"a Savitzky-Golay window of {self.window}")
        out = savgol_filter(x.astype(np.float64), self.window, self.order, deriv=self.deriv, axis=1, mode="interp")
        return out.astype(np.float32)


@register_step
class SavitzkyGolayConfig(StepConfig):
    """Savitzky-Golay smoothing or differentiation."""

    name: Literal["savgol"] = "savgol"
    kinds: ClassVar[tuple[DataKind, ...]] = SEQUENCE
    order: int = Field(3, ge=0, le=10, description="polynomial order")
    deriv: int = Field(0, ge=0, description="derivative order (0: smoothing)")
    window: int = Field(11, ge=1, description="odd, larger than `order`")

    _window = field_validator("window")(odd_window_above_order)

    @field_validator("deriv")
    @classmethod
    def _deriv_within_order(cls, deriv: int, info: ValidationInfo) -> int:
        order = info.data.get("order")
        if order is not None and deriv > order:
            raise ValueError(f"deriv must be at most order ({order})")
        return deriv

    def transformer(self, kind: DataKind) -> Step:
        return SavitzkyGolay(self.window, self.order, self.deriv)


class MovingAverage(Step):
    """Centred mean over `window` steps (edges repeat the end values)."""

    def __init__(self, window: int = 5) -> None:
        self.window = window

    def transform(self, x: np.ndarray) -> np.ndarray:
        from scipy.ndimage import uniform_filter1d

        return uniform_filter1d(x.astype(np.float64), self.window, axis=1, mode="nearest").astype(np.float32)


@register_step
class MovingAverageConfig(StepConfig):
    """A moving average, the baseline smoother to compare Savitzky-Golay against."""

    name: Literal["moving_average"] = "moving_average"
    kinds: ClassVar[tuple[DataKind, ...]] = SEQUENCE
    window: int = Field(5, ge=1)

    def transformer(self, kind: DataKind) -> Step:
        return MovingAverage(self.window)
