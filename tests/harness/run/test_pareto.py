"""The Pareto front and hypervolume on hand-made points with known answers."""

from __future__ import annotations

import pytest

from harness.run.pareto import pareto_front
from harness.study.schema import Constraint

ROWS = [
    {"trial_id": "a", "acc": 0.90, "bytes": 100.0},
    {"trial_id": "b", "acc": 0.95, "bytes": 300.0},
    {"trial_id": "c", "acc": 0.93, "bytes": 200.0},
    {"trial_id": "d", "acc": 0.92, "bytes": 250.0},  # dominated by c
    {"trial_id": "e", "acc": 0.80, "bytes": 100.0},  # dominated by a
    {"trial_id": "f", "acc": float("nan"), "bytes": 10.0},  # incomplete: never on the front
]
OBJECTIVES = [("acc", "max"), ("bytes", "min")]


def test_front_holds_exactly_the_non_dominated_points():
    front = pareto_front(ROWS, OBJECTIVES)
    assert [m["trial_id"] for m in front.members] == ["b", "c", "a"]  # best first objective first
    assert front.reference == {"acc": 0.80, "bytes": 300.0}  # the worst complete values


def test_hypervolume_against_a_stated_reference():
    front = pareto_front(ROWS, OBJECTIVES, reference={"acc": 0.80, "bytes": 400.0})
    # Minimizing (-acc, bytes) from (-0.80, 400): a = 0.10 x 300, c adds 0.03 x 200, b adds 0.02 x 100.
    assert front.hypervolume == pytest.approx(0.10 * 300 + 0.03 * 200 + 0.02 * 100)


def test_constraints_exclude_infeasible_trials():
    front = pareto_front(ROWS, OBJECTIVES, constraints=[Constraint(metric="val/acc", op=">=", value=0.5)])
    assert len(front.members) == 3  # a constraint on a metric the rows lack excludes nothing
    bound = Constraint.model_construct(metric="acc", op=">=", value=0.925)
    front = pareto_front(ROWS, OBJECTIVES, constraints=[bound])
    assert [m["trial_id"] for m in front.members] == ["b", "c"]
    assert set(front.infeasible) == {"a", "d", "e"}
