"""An in-memory Optuna study rebuilt from a study's MLflow runs, so that Optuna's own
visualizations (optimization history, parallel coordinates, importances, slices, Pareto front,
hypervolume history) draw it instead of code of our own."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from dashboards.study_data import StudyData
from harness.tracking import contract as c


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def distributions(data: StudyData) -> dict[str, BaseDistribution]:
    """Per searched parameter (MLflow params are strings): a float range where every value is
    a number and they differ, else the categories seen."""
    seen: dict[str, set[str]] = {}
    for trial in data.trials:
        for key, value in trial.params.items():
            seen.setdefault(key, set()).add(value)
    out: dict[str, BaseDistribution] = {}
    for key, values in seen.items():
        numbers = [_number(v) for v in values]
        if all(n is not None for n in numbers) and len(values) > 1:
            out[key] = FloatDistribution(min(numbers), max(numbers))  # type: ignore[type-var]
        else:
            out[key] = CategoricalDistribution(sorted(values))
    return out


def _param(value: str, distribution: BaseDistribution) -> Any:
    return float(value) if isinstance(distribution, FloatDistribution) else value


def objective_names(data: StudyData) -> list[str]:
    return [m for m, _ in data.objectives] or [data.metric]


def optuna_study(data: StudyData) -> optuna.Study:
    """Completed trials with every objective finite as COMPLETE (early-stopped ones too, with
    their last value), failed ones as FAIL; per-epoch values as intermediate values."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    modes = [mode for _, mode in data.objectives] or [data.mode]
    study = optuna.create_study(directions=["minimize" if m == "min" else "maximize" for m in modes])
    dists = distributions(data)
    names = objective_names(data)
    for trial in data.ordered():
        params = {k: _param(v, dists[k]) for k, v in trial.params.items() if k in dists}
        values = [trial.metrics.get(name, math.nan) for name in names]
        complete = trial.status != c.FAILED and trial.end_ms is not None and all(math.isfinite(v) for v in values)
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions={k: dists[k] for k in params},
                values=values if complete else None,
                state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL,
                intermediate_values={step: value for step, value in trial.curve if math.isfinite(value)},
                user_attrs={"trial_id": trial.trial_id, "status": trial.status},
            )
        )
    return study
