"""Hypervolume so far, per strategy and seed, on hand-made trials with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboards.comparison import hypervolume_so_far


def test_hypervolume_grows_with_each_front_improvement_against_a_shared_reference():
    trials = pd.DataFrame(
        {
            "strategy": ["a", "a", "a", "b", "b"],
            "seed": [0, 0, 0, 0, 0],
            "spent_trials": [1, 2, 3, 1, 2],
            "acc": [0.90, 0.80, 0.95, 0.93, np.nan],  # b's second trial failed
            "bytes": [100.0, 50.0, 300.0, 200.0, np.nan],
            "value": 0.0,
        }
    )
    out, reference = hypervolume_so_far(trials, [("acc", "max"), ("bytes", "min")], {"acc": 0.7, "bytes": 400.0})
    assert reference == {"acc": 0.7, "bytes": 400.0}
    a = out[out["strategy"] == "a"]["value"].tolist()
    assert a[0] == pytest.approx(0.20 * 300)  # (0.90, 100)
    assert a[1] == pytest.approx(0.20 * 300 + 0.10 * 50)  # (0.80, 50) adds a strip below 100 bytes
    assert a[2] == pytest.approx(a[1] + 0.05 * 100)  # (0.95, 300) adds acc above 0.90
    b = out[out["strategy"] == "b"]["value"].tolist()
    assert b == pytest.approx([0.23 * 200, 0.23 * 200])  # a failed trial changes nothing
    # Without a stated reference, the worst values over the whole comparison are used.
    _, worst = hypervolume_so_far(trials, [("acc", "max"), ("bytes", "min")])
    assert worst == {"acc": 0.80, "bytes": 300.0}
