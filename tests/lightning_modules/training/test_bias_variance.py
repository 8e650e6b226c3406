"""The bias-variance decomposition: the identity, and a predictor with a closed form."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_modules.training.bias_variance import decompose


def test_the_terms_sum_to_the_expected_error() -> None:
    rng = np.random.default_rng(0)
    predictions, truth = rng.normal(size=(7, 30)), rng.normal(size=30)
    terms = decompose(predictions, truth, 0.25)
    assert terms["bias2"] + terms["variance"] + terms["noise"] == pytest.approx(terms["expected_error"], rel=1e-12)


def test_a_constant_offset_is_all_bias_and_spread_offsets_are_all_variance() -> None:
    truth = np.linspace(-1, 1, 11)
    shifted = decompose(np.tile(truth + 0.3, (5, 1)), truth, 0.0)
    assert shifted["bias2"] == pytest.approx(0.09) and shifted["variance"] == pytest.approx(0.0, abs=1e-15)
    offsets = np.array([-0.2, 0.2])[:, None]  # mean zero, population variance 0.04
    spread = decompose(truth + offsets, truth, 0.0)
    assert spread["bias2"] == pytest.approx(0.0, abs=1e-15) and spread["variance"] == pytest.approx(0.04)


def test_the_training_set_mean_as_predictor_matches_its_closed_form() -> None:
    # y = sin(pi x) + N(0, s^2) with x ~ U[-1, 1]; predicting the training mean ybar everywhere:
    # E[ybar] = E[sin(pi X)] = 0, so bias^2 = mean over the points of sin^2(pi x), and
    # Var[ybar] = (Var[sin(pi X)] + s^2) / n = (1/2 + s^2) / n.
    rng = np.random.default_rng(1)
    sets, n, s = 4000, 20, 0.3
    points = np.linspace(-1, 1, 101)
    x = rng.uniform(-1, 1, (sets, n))
    ybar = (np.sin(np.pi * x) + rng.normal(0, s, (sets, n))).mean(axis=1)
    terms = decompose(np.tile(ybar[:, None], (1, len(points))), np.sin(np.pi * points), s**2)
    assert terms["bias2"] == pytest.approx(np.mean(np.sin(np.pi * points) ** 2), abs=0.003)
    assert terms["variance"] == pytest.approx((0.5 + s**2) / n, rel=0.06)
    assert terms["noise"] == pytest.approx(s**2)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="models, points"):
        decompose(np.zeros((3, 4)), np.zeros(5), 0.0)
