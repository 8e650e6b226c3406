"""Feature steps for sequences (n, time, channels): FFT band magnitudes, rolling statistics and
the Clarke / Park transforms of three-phase signals. Stateless: each sample on its own."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from lightning_modules.data.datasets import DataKind
from lightning_modules.data.preprocessing import Step, StepConfig, register_step

SEQUENCE: tuple[DataKind, ...] = ("sequence",)
Stat = Literal["mean", "std", "min", "max"]


class FftBins(Step):
    """Magnitude spectrum of each series (real FFT, divided by the length), averaged over `bins`
    equal bands from DC to Nyquist: (n, time, channels) -> (n, bins, channels), frequency in place
    of time. `log` applies log(1 + magnitude)."""

    def __init__(self, bins: int = 16, log: bool = False) -> None:
        self.bins, self.log = bins, log

    def transform(self, x: np.ndarray) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(x.astype(np.float64), axis=1)) / x.shape[1]
        if spectrum.shape[1] < self.bins:
            raise ValueError(f"fft: {self.bins} bins need at least {self.bins} frequencies, given {spectrum.shape[1]}")
        bands = np.array_split(np.arange(spectrum.shape[1]), self.bins)
        out = np.stack([spectrum[:, band].mean(axis=1) for band in bands], axis=1)
        return (np.log1p(out) if self.log else out).astype(np.float32)


@register_step
class FftConfig(StepConfig):
    """Spectral features: band-averaged FFT magnitudes."""

    name: Literal["fft"] = "fft"
    kinds: ClassVar[tuple[DataKind, ...]] = SEQUENCE
    bins: int = Field(16, ge=1)
    log: bool = False

    def transformer(self, kind: DataKind) -> Step:
        return FftBins(self.bins, self.log)


class RollingStats(Step):
    """Appends centred rolling statistics over `window` steps to each channel:
    (n, time, c) -> (n, time, c * (1 + len(stats))), the original channels first."""

    def __init__(self, window: int = 8, stats: tuple[str, ...] = ("mean", "std")) -> None:
        self.window, self.stats = window, stats

    def transform(self, x: np.ndarray) -> np.ndarray:
        from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

        values = x.astype(np.float64)
        mean = uniform_filter1d(values, self.window, axis=1, mode="nearest")
        computed = {
            "mean": lambda: mean,
            "std": lambda: np.sqrt(
                np.maximum(uniform_filter1d(values**2, self.window, axis=1, mode="nearest") - mean**2, 0.0)
            ),
            "min": lambda: minimum_filter1d(values, self.window, axis=1, mode="nearest"),
            "max": lambda: maximum_filter1d(values, self.window, axis=1, mode="nearest"),
        }
        return np.concatenate([values] + [computed[s]() for s in self.stats], axis=-1).astype(np.float32)


@register_step
class RollingConfig(StepConfig):
    """Rolling statistics as extra channels."""

    name: Literal["rolling"] = "rolling"
    kinds: ClassVar[tuple[DataKind, ...]] = SEQUENCE
    window: int = Field(8, ge=2)
    stats: tuple[Stat, ...] = Field(("mean", "std"), min_length=1)

    def transformer(self, kind: DataKind) -> Step:
        return RollingStats(self.window, tuple(self.stats))


def clarke(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude-invariant Clarke transform: alpha = (2a - b - c) / 3, beta = (b - c) / sqrt(3)."""
    return (2 * a - b - c) / 3.0, (b - c) / math.sqrt(3.0)


def park(alpha: np.ndarray, beta: np.ndarray, sin: np.ndarray, cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Park transform into the frame turning with angle theta: d = alpha cos + beta sin,
    q = -alpha sin + beta cos. Balanced phases at that angle give constant d and q."""
    return alpha * cos + beta * sin, -alpha * sin + beta * cos


class PhaseTransform(Step):
    """Replaces each triple of phase channels by its Clarke (alpha, beta) or, with `angle` channels
    (sin, cos of the electrical angle: a resolver's outputs), Park (d, q) pair. The pairs come
    first, in the order of `phases`, then the other channels unchanged (with `keep`, the phase
    channels too): motor data under `park` becomes i_d, i_q, v_d, v_q, sin, cos."""

    def __init__(
        self, phases: tuple[tuple[int, int, int], ...] = ((0, 1, 2),), angle: tuple[int, int] | None = None,
        keep: bool = False,
    ) -> None:
        self.phases, self.angle, self.keep = phases, angle, keep

    def transform(self, x: np.ndarray) -> np.ndarray:
        used = {c for triple in self.phases for c in triple}
        needed = max(used | set(self.angle or ()))
        if needed >= x.shape[-1]:
            raise ValueError(f"channel {needed} does not exist: the data has {x.shape[-1]} channels")
        out = []
        for a, b, c in self.phases:
            pair = clarke(x[..., a], x[..., b], x[..., c])
            if self.angle is not None:
                pair = park(*pair, x[..., self.angle[0]], x[..., self.angle[1]])
            out.append(np.stack(pair, axis=-1))
        out.append(x[..., [c for c in range(x.shape[-1]) if self.keep or c not in used]])
        return np.concatenate(out, axis=-1).astype(np.float32)


class _PhasesConfig(StepConfig):
    kinds: ClassVar[tuple[DataKind, ...]] = SEQUENCE
    # Defaults fit the motor dataset: currents 0-2, voltages 3-5.
    phases: tuple[tuple[int, int, int], ...] = Field(((0, 1, 2), (3, 4, 5)), min_length=1)
    keep: bool = Field(False, description="keep the phase channels beside the transformed pairs")

    @model_validator(mode="after")
    def _distinct_channels(self) -> _PhasesConfig:
        used = [c for triple in self.phases for c in triple] + list(getattr(self, "angle", ()) or ())
        if min(used) < 0 or len(set(used)) != len(used):
            raise ValueError(f"phase and angle channels must be distinct indices >= 0 (given {used})")
        return self


@register_step
class ClarkeConfig(_PhasesConfig):
    """Three-phase channels -> (alpha, beta) in the stator frame."""

    name: Literal["clarke"] = "clarke"

    def transformer(self, kind: DataKind) -> Step:
        return PhaseTransform(self.phases, None, self.keep)


@register_step
class ParkConfig(_PhasesConfig):
    """Three-phase channels -> (d, q) in the rotor frame, given sin/cos of the electrical angle."""

    name: Literal["park"] = "park"
    angle: tuple[int, int] = Field((6, 7), description="channels holding sin and cos of the electrical angle")

    def transformer(self, kind: DataKind) -> Step:
        return PhaseTransform(self.phases, self.angle, self.keep)
