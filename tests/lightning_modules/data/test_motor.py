"""The motor generator: deterministic per seed, and its physics checks out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_modules.data.datasets import load_dataset
from lightning_modules.data.features import PhaseTransform, clarke, park
from lightning_modules.data.motor import MOTOR, MotorConfig, dq_to_abc, operating_point
from lightning_modules.data.outliers import HampelOutliers

QUIET = {"noise": 0.0, "spike_rate": 0.0, "drift": 0.0}


def motor(seed: int = 0, **settings: object):
    return load_dataset(MotorConfig(num_samples=60, length=128, **settings), seed)


def test_deterministic_for_a_seed():
    a, b, c = motor(3), motor(3), motor(4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.time, b.time)
    assert all(np.array_equal(a.regimes[k], b.regimes[k]) for k in a.regimes)
    assert not np.array_equal(a.x, c.x)


def test_resistance_rises_and_flux_falls_with_temperature():
    temperatures = np.array([20.0, 60.0, 100.0, 140.0])
    resistance, flux = MOTOR.resistance(temperatures), MOTOR.flux(temperatures)
    assert np.all(np.diff(resistance) > 0) and np.all(np.diff(flux) < 0)
    assert resistance[-1] / resistance[0] == pytest.approx(1 + 0.00393 * 120)  # copper
    # Holding a torque with weaker magnets takes more current.
    point = operating_point(temperatures, np.full(4, 1500.0), np.full(4, 5.0))
    assert np.all(np.diff(point.i_q) > 0)


def test_park_transform_of_balanced_currents_is_constant():
    theta = np.linspace(0, 6 * math.pi, 500)[None, :]
    phases = dq_to_abc(np.full_like(theta, 2.0), np.full_like(theta, 7.0), theta)  # balanced three-phase
    assert np.allclose(phases.sum(axis=-1), 0.0, atol=1e-9)
    d, q = park(*clarke(phases[..., 0], phases[..., 1], phases[..., 2]), np.sin(theta), np.cos(theta))
    assert np.allclose(d, 2.0) and np.allclose(q, 7.0)
    alpha, _ = clarke(phases[..., 0], phases[..., 1], phases[..., 2])
    assert alpha.std() > 1.0  # in the stator frame the same currents rotate


def test_generated_signals_obey_the_dq_equations():
    """Noise-free windows: d/q currents and voltages from the resolver angle are constant over each
    window and satisfy v_q = R(T) i_q + omega_e psi(T) with the window's temperature and speed."""
    data = motor(1, **QUIET)
    dq = PhaseTransform(((0, 1, 2), (3, 4, 5)), angle=(6, 7)).transform(data.x)[..., :4]  # i_d i_q v_d v_q
    assert dq.std(axis=1).max() < 1e-4 * np.abs(dq).max()
    i_d, i_q, v_q = dq[:, :, 0].mean(1), dq[:, :, 1].mean(1), dq[:, :, 3].mean(1)
    temperature, speed = data.regimes["temperature"], data.regimes["speed"]
    omega_e = MOTOR.pole_pairs * speed * 2 * math.pi / 60
    assert np.allclose(i_d, 0.0, atol=1e-3)
    assert np.allclose(v_q, MOTOR.resistance(temperature) * i_q + omega_e * MOTOR.flux(temperature), rtol=1e-4)
    assert np.allclose(data.y, 1.5 * MOTOR.pole_pairs * MOTOR.flux(temperature) * i_q, rtol=1e-4)  # torque


def test_winding_heats_under_load_and_cools_without():
    hot = motor(0, load=(1.0, 1.0), speed=(2000.0, 2000.0), target="temperature")
    cold = motor(0, load=(0.0, 0.0), speed=(300.0, 300.0), target="temperature")
    assert np.all(np.diff(hot.y) > 0) and hot.y[-1] > hot.y[0] + 40  # towards its steady state
    assert cold.y.max() < 26.0
    assert np.array_equal(hot.y, hot.regimes["temperature"].astype(np.float32))


def test_sensor_errors_noise_spikes_and_drift():
    clean, noisy = motor(2, **QUIET), motor(2, noise=0.02, spike_rate=0.0, drift=0.0)
    spread = (noisy.x - clean.x)[..., :3].std() / MOTOR.rated_current
    assert spread == pytest.approx(0.02, rel=0.1)
    spiky = motor(2, noise=0.0, drift=0.0, spike_rate=0.002, spike_size=3.0, spike_burst=2)
    jumps = np.abs(spiky.x - clean.x)[..., :6] > 0.5 * MOTOR.rated_current
    assert jumps.any() and HampelOutliers(half_width=4).outliers(spiky.x[..., :3])[jumps[..., :3]].mean() > 0.9
    drifting = motor(2, noise=0.0, spike_rate=0.0, drift=0.05)
    offset = (drifting.x - clean.x)[..., :6]
    assert np.abs(offset).max() == pytest.approx(0.05 * max(MOTOR.rated_current, MOTOR.rated_voltage), rel=0.05)
    assert np.abs(np.diff(offset, axis=1)).max() < 1e-3 * np.abs(offset).max() + 1e-6  # slow within a window


def test_fault_classes_leave_their_signatures():
    data = load_dataset(MotorConfig(num_samples=400, length=256, target="fault", **QUIET), 0)
    dq = PhaseTransform(((0, 1, 2),), angle=(6, 7)).transform(data.x)
    ripple = dq[:, :, 1].std(axis=1) / np.abs(dq[:, :, 1].mean(axis=1))
    imbalance = np.abs(data.x[..., :3].sum(axis=-1)).max(axis=1) / np.abs(data.x[..., :3]).max(axis=(1, 2))
    healthy, turn, bearing = data.y == 0, data.y == 1, data.y == 3
    assert ripple[bearing].min() > 10 * ripple[healthy].max()  # torque ripple modulates i_q
    assert imbalance[turn].min() > 10 * imbalance[healthy].max() + 1e-6  # phases no longer sum to zero
