"""The result of a multi-objective study: its feasible trials' Pareto front (exact: no trial
on it is dominated by another) and the front's hypervolume against a stated reference point.
moocore computes both (in C, the reference implementations of the EMO literature)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Front:
    """`members`: rows (trial id and objective values) on the front, best first objective first;
    `reference`: the point the hypervolume is measured against, by metric; `infeasible`:
    trials a constraint excluded."""

    members: list[dict[str, Any]]
    hypervolume: float
    reference: dict[str, float]
    infeasible: list[str] = field(default_factory=list)


def _minimized(values: np.ndarray, modes: list[str]) -> np.ndarray:
    signs = np.array([1.0 if mode == "min" else -1.0 for mode in modes])
    return values * signs


def pareto_front(
    rows: list[dict[str, Any]], objectives: list[tuple[str, str]], *, constraints: list[Any] = (),
    reference: dict[str, float] | None = None,
) -> Front:
    """The non-dominated rows among those with every objective finite and every constraint met.

    `rows` hold `trial_id` and metric values; `objectives` are (metric, mode). The reference
    point defaults to the worst value of each objective over all complete rows (feasible or
    not), so it is stated with the result; a study that must compare hypervolumes across runs
    sets `search.reference`."""
    import moocore

    metrics, modes = [m for m, _ in objectives], [mode for _, mode in objectives]
    complete = [r for r in rows if all(isinstance(r.get(m), (int, float)) and math.isfinite(r[m]) for m in metrics)]
    feasible = [r for r in complete if all(k.holds(float(r[k.metric])) for k in constraints if k.metric in r)]
    infeasible = [r["trial_id"] for r in complete if r not in feasible]
    if not complete:
        return Front([], 0.0, dict(reference or {}), infeasible)
    values = np.array([[float(r[m]) for m in metrics] for r in complete])
    worst = np.where(np.array(modes) == "min", values.max(axis=0), values.min(axis=0))
    ref = {m: float((reference or {}).get(m, w)) for m, w in zip(metrics, worst)}
    if not feasible:
        return Front([], 0.0, ref, infeasible)
    points = _minimized(np.array([[float(r[m]) for m in metrics] for r in feasible]), modes)
    on_front = moocore.is_nondominated(points, keep_weakly=False)
    members = [r for r, keep in zip(feasible, on_front) if keep]
    members.sort(key=lambda r: float(r[metrics[0]]) * (1 if modes[0] == "min" else -1))
    ref_point = _minimized(np.array([ref[m] for m in metrics]), modes)
    front_points = _minimized(np.array([[float(r[m]) for m in metrics] for r in members]), modes)
    # Points at or beyond the reference add no volume; moocore ignores them.
    volume = float(moocore.hypervolume(front_points, ref=ref_point))
    return Front(members, volume, ref, infeasible)
