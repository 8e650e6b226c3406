"""Reading a study back from MLflow for its dashboard, on hand-made runs with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from dashboards.optuna_study import distributions, optuna_study
from dashboards.study_data import executions, load_study
from dashboards.study_page import seeds_page, study_page
from harness.tracking import contract as c
from tests.dashboards.mlflow_runs import make_study

TRIALS = [
    {"params": {"lr": "0.1", "width": "[8]"}, "curve": [0.9, 0.7, 0.6]},
    {"params": {"lr": "0.01", "width": "[16]"}, "curve": [0.8, 0.5], "status": c.KILLED, "reason": "stopped early by asha"},
    {"params": {"lr": "0.3", "width": "[8]"}, "curve": [2.0], "status": c.FAILED, "reason": "loss became nan"},
    {"params": {"lr": "0.05", "width": "[16]"}, "curve": [0.7, 0.4, 0.3]},
]


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_a_study_reads_back_in_result_order_with_its_best_so_far(client: MlflowClient):
    run_id = make_study(client, "handmade", TRIALS)
    data = load_study(client, run_id)
    assert [t.trial_id for t in data.ordered()] == ["t0", "t1", "t2", "t3"]
    assert data.ordered()[1].curve == [(1, 0.8), (2, 0.5)] and data.ordered()[1].reason == "stopped early by asha"
    values = data.values()
    assert values[:2].tolist() == [0.6, 0.5] and math.isnan(values[2]) and values[3] == 0.3  # a failure has no value
    assert data.best_so_far().tolist() == [0.6, 0.5, 0.5, 0.3]
    assert data.best_trial_id == "t3" and data.test == {"test/acc": 0.9}


def test_the_optuna_study_mirrors_the_runs(client: MlflowClient):
    data = load_study(client, make_study(client, "mirror", TRIALS))
    dists = distributions(data)
    assert isinstance(dists["lr"], optuna.distributions.FloatDistribution) and dists["lr"].high == 0.3
    assert isinstance(dists["width"], optuna.distributions.CategoricalDistribution)
    study = optuna_study(data)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert study.best_value == 0.3 and study.trials[1].intermediate_values == {1: 0.8, 2: 0.5}


def test_executions_of_a_study_aggregate_over_seeds(client: MlflowClient):
    for seed in range(3):
        make_study(client, "seeds", [{**t, "curve": [v + seed / 10 for v in t["curve"]]} for t in TRIALS], seed=seed)
    ids = executions(client, "seeds")
    assert len(ids) == 3
    studies = [load_study(client, i) for i in ids]
    assert [s.seed for s in studies] == [0, 1, 2]
    page = seeds_page(studies)
    assert "3 executions: a confidence interval over so few seeds" in page
    assert np.allclose(studies[2].best_so_far(), [0.8, 0.7, 0.7, 0.5])


def test_pages_render_single_and_multi_objective(client: MlflowClient):
    page = study_page(load_study(client, make_study(client, "single", TRIALS)))
    for heading in ("Optimization history", "Learning curves", "Parallel coordinates", "Parameter importances",
                    "Trials and how they ended", "Chosen configuration"):
        assert heading in page
    multi = [
        {"params": {"amount": str(a)}, "curve": [acc], "final": {"val/acc": acc, "size/bytes": size}, "pareto": p}
        for a, acc, size, p in [(0.1, 0.95, 900.0, True), (0.5, 0.93, 500.0, True), (0.9, 0.90, 600.0, False)]
    ]
    data = load_study(client, make_study(client, "multi", multi, metric="val/acc", mode="max",
                                         objectives=[("val/acc", "max"), ("size/bytes", "min")],
                                         reference={"val/acc": 0.8, "size/bytes": 1000.0}))
    page = study_page(data)
    assert "Pareto front (val/acc, size/bytes)" in page and "Hypervolume history" in page and "Pareto front members (2)" in page
