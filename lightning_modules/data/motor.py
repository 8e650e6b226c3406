"""A physically grounded generator of permanent-magnet synchronous motor (PMSM) signals.

Windows of three-phase currents and voltages and a resolver's sin/cos of the rotor angle, sampled
along a drive cycle of varying speed and load. Winding temperature follows a first-order thermal
model of the losses; it raises the copper resistance and weakens the magnets. Sensors add noise,
bursts of spikes and a slow offset drift. The equations are in docs/data.md.

Channels of x (n, length, 8): i_a, i_b, i_c (A), v_a, v_b, v_c (V), sin(theta_e), cos(theta_e).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from lightning_modules.config import Config
from lightning_modules.data.datasets import DATASETS, ArrayDataset, DatasetEntry

CHANNELS = ("i_a", "i_b", "i_c", "v_a", "v_b", "v_c", "sin_theta", "cos_theta")
FAULTS = ("healthy", "turn_fault", "demagnetization", "bearing")
REGIMES = ("temperature", "speed", "load")
COPPER_ALPHA = 0.00393  # 1/K: copper's temperature coefficient of resistance near 20 degC
NDFEB_ALPHA = -0.0012  # 1/K: NdFeB remanence (magnet flux) temperature coefficient
BEARING_ORDER = 3.57  # outer-race defect frequency / shaft frequency, a typical ball bearing


@dataclass(frozen=True)
class PMSM:
    """Nameplate and thermal parameters of a small surface-mounted PMSM (L_d = L_q)."""

    pole_pairs: int = 4
    r20: float = 0.2  # ohm, phase resistance at 20 degC
    psi20: float = 0.1  # Wb, magnet flux linkage at 20 degC
    inductance: float = 0.002  # H
    friction: float = 0.001  # N m s / rad, viscous
    rated_torque: float = 10.0  # N m
    max_speed: float = 3000.0  # rpm
    thermal_resistance: float = 1.2  # K / W, winding to ambient
    thermal_capacity: float = 500.0  # J / K: time constant 600 s
    iron_loss: float = 3.0e-4  # W s^2: iron loss k * omega_m^2

    def resistance(self, temperature: np.ndarray | float) -> np.ndarray | float:
        """R(T) = R20 (1 + alpha_Cu (T - 20))."""
        return self.r20 * (1.0 + COPPER_ALPHA * (np.asarray(temperature) - 20.0))

    def flux(self, temperature: np.ndarray | float) -> np.ndarray | float:
        """psi(T) = psi20 (1 + alpha_PM (T - 20)): magnets at winding temperature."""
        return self.psi20 * (1.0 + NDFEB_ALPHA * (np.asarray(temperature) - 20.0))

    @property
    def rated_current(self) -> float:
        return self.rated_torque / (1.5 * self.pole_pairs * self.psi20)

    @property
    def rated_voltage(self) -> float:
        return self.pole_pairs * self.max_speed * 2 * math.pi / 60 * self.psi20

    @property
    def time_constant(self) -> float:
        return self.thermal_resistance * self.thermal_capacity


MOTOR = PMSM()


class MotorConfig(Config):
    """A drive cycle of `num_samples` windows, one every `spacing` seconds."""

    name: Literal["motor"] = "motor"
    target: Literal["torque", "temperature", "fault"] = "torque"
    num_samples: int = Field(1000, ge=10, description="windows")
    length: int = Field(256, ge=8, description="samples per window")
    sample_rate: float = Field(5000.0, gt=0.0, description="Hz")
    spacing: float = Field(5.0, gt=0.0, description="seconds between window starts")
    segment: float = Field(120.0, gt=0.0, description="mean seconds an operating point is held")
    speed: tuple[float, float] = Field((300.0, 3000.0), description="rpm range of the operating points")
    load: tuple[float, float] = Field((0.0, 1.0), description="load torque range, fraction of rated")
    ambient: float = Field(25.0, ge=-40.0, le=80.0, description="degC")
    noise: float = Field(0.01, ge=0.0, description="sensor noise std, fraction of the rated amplitude")
    spike_rate: float = Field(0.0005, ge=0.0, le=0.1, description="chance per point that a spike burst starts")
    spike_size: float = Field(3.0, ge=0.0, description="spike height, fraction of the rated amplitude")
    spike_burst: int = Field(3, ge=1, description="points per spike burst")
    drift: float = Field(0.02, ge=0.0, description="largest sensor offset drift, fraction of the rated amplitude")

    @model_validator(mode="after")
    def _ranges(self) -> MotorConfig:
        if not 0.0 < self.speed[0] <= self.speed[1] <= MOTOR.max_speed * 1.2:
            raise ValueError(f"speed must satisfy 0 < low <= high <= {MOTOR.max_speed * 1.2:g} rpm (given {self.speed})")
        if not 0.0 <= self.load[0] <= self.load[1] <= 1.5:
            raise ValueError(f"load must satisfy 0 <= low <= high <= 1.5 (fraction of rated; given {self.load})")
        return self


@dataclass(frozen=True)
class OperatingPoint:
    """Steady-state dq quantities of one window (arrays over windows)."""

    resistance: np.ndarray
    flux: np.ndarray
    omega_e: np.ndarray
    torque: np.ndarray
    i_q: np.ndarray
    v_d: np.ndarray
    v_q: np.ndarray


def operating_point(
    temperature: np.ndarray, speed_rpm: np.ndarray, load: np.ndarray, demagnetized: np.ndarray | float = 0.0,
    motor: PMSM = MOTOR,
) -> OperatingPoint:
    """i_d = 0 control: torque T_e = 1.5 p psi i_q balances load and friction; dq voltages from
    v_d = R i_d - omega_e L i_q and v_q = R i_q + omega_e (L i_d + psi)."""
    omega_m = np.asarray(speed_rpm) * 2 * math.pi / 60
    omega_e = motor.pole_pairs * omega_m
    resistance = np.asarray(motor.resistance(temperature))
    flux = np.asarray(motor.flux(temperature)) * (1.0 - np.asarray(demagnetized))
    torque = np.asarray(load) + motor.friction * omega_m
    i_q = torque / (1.5 * motor.pole_pairs * flux)
    return OperatingPoint(resistance, flux, omega_e, torque, i_q, -omega_e * motor.inductance * i_q,
                          resistance * i_q + omega_e * flux)


def dq_to_abc(d: np.ndarray, q: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Amplitude-invariant inverse Park: phase k = d cos(theta - 2 pi k/3) - q sin(theta - 2 pi k/3)."""
    shifts = np.array([0.0, -2 * math.pi / 3, 2 * math.pi / 3])
    angle = theta[..., None] + shifts
    return d[..., None] * np.cos(angle) - q[..., None] * np.sin(angle)


def _drive_cycle(cfg: MotorConfig, rng: np.random.Generator, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant speed (rpm) and load (N m) at each window start."""
    total = starts[-1] + cfg.spacing
    durations = [rng.exponential(cfg.segment)]
    while sum(durations) < total:
        durations.append(rng.exponential(cfg.segment))
    ends = np.cumsum(durations)
    segment = np.searchsorted(ends, starts, side="right")
    speeds = rng.uniform(*cfg.speed, len(durations))
    loads = rng.uniform(*cfg.load, len(durations)) * MOTOR.rated_torque
    return speeds[segment], loads[segment]


def _winding_temperature(
    cfg: MotorConfig, speed: np.ndarray, load: np.ndarray, demagnetized: np.ndarray
) -> np.ndarray:
    """First-order thermal model C dT/dt = P_loss - (T - T_amb) / R_th, exact for losses held
    constant over each `spacing`; P_loss = 1.5 R(T) i_q^2 + k omega_m^2."""
    decay = math.exp(-cfg.spacing / MOTOR.time_constant)
    out = np.empty(len(speed))
    temperature = cfg.ambient
    for k in range(len(speed)):
        out[k] = temperature
        point = operating_point(np.array(temperature), speed[k], load[k], demagnetized[k])
        omega_m = speed[k] * 2 * math.pi / 60
        loss = 1.5 * point.resistance * point.i_q**2 + MOTOR.iron_loss * omega_m**2
        steady = cfg.ambient + loss * MOTOR.thermal_resistance
        temperature = float(steady + (temperature - steady) * decay)
    return out


def _sensor_errors(cfg: MotorConfig, rng: np.random.Generator, shape: tuple[int, int], local_t: np.ndarray) -> np.ndarray:
    """Noise, spike bursts and a slowly drifting offset for the six current and voltage channels."""
    n, length = shape
    amplitude = np.array([MOTOR.rated_current] * 3 + [MOTOR.rated_voltage] * 3)
    errors = rng.normal(0.0, 1.0, (n, length, 6)) * cfg.noise * amplitude
    # Offset drift: a random walk over windows, scaled to `drift` at its largest, interpolated
    # linearly inside each window, so it is slow against a window but not constant.
    walk = np.cumsum(rng.normal(0.0, 1.0, (n + 1, 6)), axis=0)
    walk = walk / np.maximum(np.abs(walk).max(axis=0), 1e-12) * cfg.drift * amplitude
    frac = (local_t / cfg.spacing)[None, :, None]
    errors += walk[:-1, None, :] + (walk[1:] - walk[:-1])[:, None, :] * frac
    if cfg.spike_rate > 0 and cfg.spike_size > 0:
        starts = rng.random((n, length, 6)) < cfg.spike_rate
        bursts = np.zeros_like(starts)
        for offset in range(cfg.spike_burst):  # each start lights `spike_burst` points
            bursts[:, offset:] |= starts[:, : length - offset]
        sign = np.where(rng.random((n, length, 6)) < 0.5, -1.0, 1.0)
        height = rng.uniform(0.5, 1.0, (n, length, 6)) * cfg.spike_size * amplitude
        errors += bursts * sign * height
    return errors


def generate_motor(cfg: MotorConfig, seed: int = 0) -> ArrayDataset:
    """Windows of the drive cycle; `regimes` temperature (degC), speed (rpm), load (N m); `time`
    each window's start (s). Targets: torque (N m, the window's mean electromagnetic torque),
    temperature (degC) or fault (classes: healthy, turn_fault, demagnetization, bearing)."""
    rng = np.random.default_rng(seed)
    n, length = cfg.num_samples, cfg.length
    starts = np.arange(n) * cfg.spacing
    speed, load = _drive_cycle(cfg, rng, starts)
    fault = rng.integers(0, len(FAULTS), n) if cfg.target == "fault" else np.zeros(n, np.int64)
    severity = rng.uniform(0.0, 1.0, n)
    demagnetized = np.where(fault == 2, 0.1 + 0.2 * severity, 0.0)  # 10-30 % flux lost
    temperature = _winding_temperature(cfg, speed, load, demagnetized)
    point = operating_point(temperature, speed, load, demagnetized)

    local_t = np.arange(length) / cfg.sample_rate
    theta = rng.uniform(0, 2 * math.pi, n)[:, None] + point.omega_e[:, None] * local_t
    # Bearing defect: the load torque, so i_q, ripples at the defect frequency (5-15 %).
    ripple = np.where(fault == 3, 0.05 + 0.1 * severity, 0.0)[:, None]
    defect = 2 * math.pi * BEARING_ORDER * speed / 60
    phase = defect[:, None] * local_t + rng.uniform(0, 2 * math.pi, n)[:, None]
    i_q = point.i_q[:, None] * (1.0 + ripple * np.sin(phase))
    di_q = point.i_q[:, None] * ripple * defect[:, None] * np.cos(phase)
    v_d = -point.omega_e[:, None] * MOTOR.inductance * i_q
    v_q = point.resistance[:, None] * i_q + MOTOR.inductance * di_q + (point.omega_e * point.flux)[:, None]
    currents = dq_to_abc(np.zeros_like(i_q), i_q, theta)
    voltages = dq_to_abc(v_d, v_q, theta)
    # Inter-turn short in phase a: fewer effective turns, so more current and less voltage there.
    shorted = np.where(fault == 1, 0.05 + 0.15 * severity, 0.0)[:, None]
    currents[..., 0] *= 1.0 + shorted
    voltages[..., 0] *= 1.0 - shorted / 2
    signals = np.concatenate([currents, voltages], axis=-1) + _sensor_errors(cfg, rng, (n, length), local_t)
    resolver = np.stack([np.sin(theta), np.cos(theta)], axis=-1)
    resolver += rng.normal(0.0, cfg.noise, resolver.shape)
    x = np.concatenate([signals, resolver], axis=-1).astype(np.float32)

    torque = 1.5 * MOTOR.pole_pairs * point.flux * i_q.mean(axis=1)
    if cfg.target == "fault":
        y, task, classes = fault.astype(np.int64), "classification", len(FAULTS)
    else:
        y, task, classes = (torque if cfg.target == "torque" else temperature).astype(np.float32), "regression", 0
    return ArrayDataset(
        x=x, y=y, task=task, kind="sequence", num_classes=classes,
        regimes={"temperature": temperature, "speed": speed, "load": load},
        time=starts,
    )


DATASETS.register("motor")(DatasetEntry(MotorConfig, generate_motor, kind="sequence", regimes=REGIMES))
