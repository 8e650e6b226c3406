"""The Kalman step: the same recursions as statsmodels, the known steady state, and what the
step learns on the train split."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.tsa.statespace.structural import UnobservedComponents

from lightning_modules.data import PREPROCESSORS, step_config
from lightning_modules.data.kalman import KalmanSmoother, local_level, steady_state_gain


@pytest.fixture(scope="module")
def random_walk() -> tuple[np.ndarray, float, float]:
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(0, 0.1, 200)) + rng.normal(0, 0.5, 200)
    fit = UnobservedComponents(y, level="llevel").fit(disp=False)
    params = dict(zip(fit.model.param_names, fit.params))
    return y, params["sigma2.level"], params["sigma2.irregular"]


def test_filter_and_smoother_equal_statsmodels(random_walk: tuple[np.ndarray, float, float]) -> None:
    y, q, r = random_walk
    reference = UnobservedComponents(y, level="llevel").smooth([r, q])
    filtered = local_level(y[None], np.array([q]), np.array([r]), smooth=False)[0]
    smoothed = local_level(y[None], np.array([q]), np.array([r]))[0]
    np.testing.assert_allclose(filtered, reference.filtered_state[0], atol=1e-7)
    np.testing.assert_allclose(smoothed, reference.smoothed_state[0], atol=1e-7)


@pytest.mark.parametrize("q, r", [(0.01, 1.0), (1.0, 0.1), (0.5, 0.5)])
def test_the_filter_reaches_its_steady_state_gain(q: float, r: float) -> None:
    # After a long constant signal the gain has converged; a unit step then moves the filtered
    # level by exactly the gain.
    y = np.zeros(400)
    y[300:] = 1.0
    filtered = local_level(y[None], np.array([q]), np.array([r]), smooth=False)[0]
    assert filtered[300] == pytest.approx(steady_state_gain(q, r), rel=1e-9)


def test_constant_plus_noise_is_smoothed_towards_the_constant() -> None:
    rng = np.random.default_rng(1)
    x = (2.0 + rng.normal(0, 0.5, (40, 128, 1))).astype(np.float32)
    step = KalmanSmoother().fit(x)
    (q, r), = step.variances_
    assert r == pytest.approx(0.25, rel=0.2)  # the noise variance is found
    assert q < 1e-3 * r  # and the level barely moves
    out = step.transform(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert float(np.abs(out[:, 20:-20] - 2.0).max()) < 0.5 * 0.5  # far inside one noise std
    assert "log10_noise_ratio_ch0" in step.statistics({})


def test_the_config_needs_both_variances_or_neither() -> None:
    assert "kalman" in PREPROCESSORS
    given = step_config({"name": "kalman", "level_variance": 0.1, "noise_variance": 1.0}).transformer("sequence")
    x = np.random.default_rng(2).normal(size=(3, 50, 2)).astype(np.float32)
    assert given.fit(x).variances_ == [(0.1, 1.0), (0.1, 1.0)]
    with pytest.raises(ValueError, match="both"):
        step_config({"name": "kalman", "level_variance": 0.1})
