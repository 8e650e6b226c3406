"""The comparison statistics on hand-made curves with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from dashboards.statistics import (
    best_so_far,
    bootstrap_band,
    compare_to_baseline,
    mean_ranks,
    on_grid,
    regret,
    time_to_target,
)


def test_best_so_far_min_max_and_nan() -> None:
    values = np.array([3.0, np.nan, 2.0, 5.0, 1.0])
    assert best_so_far(values, "min").tolist() == [3.0, 3.0, 2.0, 2.0, 1.0]
    assert best_so_far(values, "max").tolist() == [3.0, 3.0, 3.0, 5.0, 5.0]
    assert np.isnan(best_so_far(np.array([np.nan, 4.0]), "min")[0])


def test_on_grid_reads_the_step_curve() -> None:
    xs, best = np.array([2.0, 5.0, 9.0]), np.array([4.0, 3.0, 1.0])
    out = on_grid(xs, best, np.array([1.0, 2.0, 4.0, 5.0, 100.0]))
    assert np.isnan(out[0]) and out[1:].tolist() == [4.0, 4.0, 3.0, 1.0]


def test_bootstrap_band_brackets_the_mean_and_shrinks_with_agreement() -> None:
    rng = np.random.default_rng(1)
    noisy = rng.normal(0.0, 1.0, size=(30, 1))
    band = bootstrap_band(noisy)
    assert band.low[0] < band.mean[0] < band.high[0]
    # A 95% CI of a mean of 30 N(0,1) draws is about +-0.36 wide each side.
    assert 0.2 < band.high[0] - band.mean[0] < 0.6
    same = bootstrap_band(np.full((10, 3), 2.5))
    assert np.allclose(same.low, 2.5) and np.allclose(same.high, 2.5)


def test_mean_ranks_known_order_and_ties() -> None:
    curves = {
        "good": np.array([[1.0, 0.5], [1.0, 0.5]]),
        "mid": np.array([[2.0, 0.7], [2.0, 0.7]]),
        "bad": np.array([[3.0, 0.9], [3.0, 0.9]]),
    }
    assert mean_ranks(curves, "min") == {"good": 1.0, "mid": 2.0, "bad": 3.0}
    assert mean_ranks(curves, "max") == {"good": 3.0, "mid": 2.0, "bad": 1.0}
    tied = mean_ranks({"a": np.array([[1.0]]), "b": np.array([[1.0]])}, "min")
    assert tied == {"a": 1.5, "b": 1.5}
    # No value yet ranks last.
    assert mean_ranks({"a": np.array([[np.nan]]), "b": np.array([[9.0]])}, "min") == {"a": 2.0, "b": 1.0}


def test_time_to_target() -> None:
    xs, best = np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 3.0, 3.0, 0.5])
    assert time_to_target(xs, best, 3.0, "min") == 2.0
    assert time_to_target(xs, best, 0.1, "min") is None
    assert time_to_target(xs, np.array([0.1, 0.5, 0.9, 0.95]), 0.9, "max") == 3.0


def test_regret_sign() -> None:
    assert regret(0.5, 0.397887, "min") == pytest.approx(0.102113)
    assert regret(0.9, 1.0, "max") == pytest.approx(0.1)


def test_paired_test_direction() -> None:
    baseline = np.array([1.0, 1.2, 0.9, 1.1, 1.3, 1.0, 1.25, 0.95, 1.15, 1.05])
    better = baseline - np.linspace(0.2, 0.4, 10)
    worse = baseline + np.linspace(0.2, 0.4, 10)
    good = compare_to_baseline(better, baseline, "min")
    assert good.test == "wilcoxon" and good.p_value < 0.01
    assert compare_to_baseline(worse, baseline, "min").p_value > 0.5
    # For a maximized metric the same numbers mean the opposite.
    assert compare_to_baseline(worse, baseline, "max").p_value < 0.01
    assert compare_to_baseline(baseline, baseline, "min").p_value == 1.0


def test_unpaired_test_when_seeds_are_missing() -> None:
    a = np.array([0.1, 0.2, np.nan, 0.15, 0.12, 0.11])
    b = np.array([1.0, 1.1, 0.9, 1.2, 1.05, 0.95])
    res = compare_to_baseline(a, b, "min")
    assert res.test == "mannwhitney" and res.p_value < 0.01
