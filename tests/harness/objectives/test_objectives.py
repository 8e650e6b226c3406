"""Benchmark objectives: documented optima, the learning curve's fidelity, seeded noise, the
`objective` spec section, and a trial that reports each epoch without training."""

from __future__ import annotations

import itertools
import math
import random
import subprocess
import sys

import pytest
from scipy.stats import spearmanr

from harness.errors import SpecError
from harness.objectives import OBJECTIVES, evaluate
from harness.objectives.functions import H6_OPTIMUM, learning_curve
from harness.study import spec_from_dict
from harness.trial.objective import ObjectivePlan, checkpoint_epoch, run_objective

# The documented optima (docs/strategies.md), to the digits published with their sources.
PUBLISHED = {"branin": 0.397887, "hartmann6": -3.32237, "learning_curve": -3.32237}


def study(objective: dict, **search) -> dict:
    return {
        "name": "obj",
        "objective": objective,
        "train": {"max_epochs": 4},
        "search": {"metric": "objective/value", **search},
    }


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_value_at_every_argmin_is_the_documented_optimum(name):
    entry = OBJECTIVES.get(name)
    assert math.isclose(entry.optimum, PUBLISHED[name], abs_tol=1e-5)
    for argmin in entry.argmins:
        assert abs(entry.evaluate(list(argmin), 9, 9) - entry.optimum) < 1e-4


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_no_point_of_the_domain_beats_the_optimum(name):
    entry = OBJECTIVES.get(name)
    fields = entry.config.model_fields
    inputs = [n for n in fields if n.startswith("x")]
    rng = random.Random(0)
    for _ in range(2000):
        x = [rng.uniform(fields[n].metadata[0].ge, fields[n].metadata[1].le) for n in inputs]
        assert entry.evaluate(x, 9, 9) >= entry.optimum - 1e-12


def test_learning_curve_improves_with_epochs_and_reaches_hartmann6_at_full_budget():
    x = [0.3, 0.7, 0.1, 0.9, 0.5, 0.2]
    curve = [learning_curve(x, epoch, 27) for epoch in range(1, 28)]
    assert all(a > b for a, b in itertools.pairwise(curve))  # strictly better every epoch
    assert curve[-1] == OBJECTIVES.get("hartmann6").evaluate(x, 1, 1)
    # Early rankings predict final ones, but only partly, and better as epochs pass: the
    # setting in which ASHA, Hyperband and BOHB pay off and can still be wrong.
    rng = random.Random(0)
    points = [[rng.random() for _ in range(6)] for _ in range(300)]
    final = [learning_curve(p, 27, 27) for p in points]
    rho = [spearmanr([learning_curve(p, epoch, 27) for p in points], final).statistic for epoch in (1, 3, 9)]
    assert 0.5 < rho[0] < rho[1] < rho[2] < 1.0


def test_noise_is_seeded_per_trial_and_regret_stays_noise_free():
    spec = spec_from_dict(study({"name": "hartmann6", "noise": 0.1}))
    config = spec.objective
    first, again = evaluate(config, 0, 1, 4), evaluate(config, 0, 1, 4)
    assert first == again  # reproducible
    other_seed = evaluate(config, 1, 1, 4)
    other_point = evaluate(config.model_copy(update={"x1": 0.4}), 0, 1, 4)
    assert len({first["objective/value"], other_seed["objective/value"], other_point["objective/value"]}) == 3
    true_value = OBJECTIVES.get("hartmann6").evaluate(config.inputs(), 1, 4)
    assert first["objective/regret"] == true_value - OBJECTIVES.get("hartmann6").optimum
    draws = [evaluate(config, seed, 1, 4)["objective/value"] - true_value for seed in range(400)]
    mean = sum(draws) / len(draws)
    std = math.sqrt(sum((d - mean) ** 2 for d in draws) / len(draws))
    assert abs(mean) < 0.02 and 0.08 < std < 0.12


def test_objective_trial_reports_every_epoch_and_resumes_after_its_checkpoint(tmp_path):
    spec = spec_from_dict(study({"name": "learning_curve", "x3": 0.2}))
    reports: list[dict] = []
    saved: list[int] = []

    def sink(metrics: dict, folder) -> None:
        reports.append(metrics)
        saved.append(checkpoint_epoch(folder))

    run_objective(ObjectivePlan.from_spec(spec), sink)
    assert [r["epoch"] for r in reports] == saved == [1, 2, 3, 4]
    values = [r["objective/value"] for r in reports]
    assert values == sorted(values, reverse=True)
    # Noise-free: the last epoch's regret is its value above Hartmann-6's optimum, at full budget.
    assert reports[-1]["objective/regret"] == pytest.approx(values[-1] - H6_OPTIMUM, abs=1e-12)
    resumed: list[dict] = []
    run_objective(ObjectivePlan.from_spec(spec), lambda metrics, folder: resumed.append(metrics), start_epoch=2)
    assert resumed == reports[2:]  # a resumed trial continues exactly where it left off


def test_objective_inputs_are_searchable_by_dotted_path():
    spec = spec_from_dict(study({"name": "branin"}, space={"objective.x1": {"uniform": [-5, 10]}}))
    assert spec.with_values({"objective.x1": 3.0}).objective.x1 == 3.0
    assert "objective" not in spec_from_dict({"name": "plain"}).to_dict()  # training studies unchanged


@pytest.mark.parametrize(
    ("objective", "search", "expected"),
    [
        ({"name": "rosenbrock"}, {}, "objective.name: unknown objective 'rosenbrock'; known: branin, hartmann6"),
        ({"x1": 1.0}, {}, "objective.name: missing; known: branin, hartmann6, learning_curve"),
        ({"name": "branin", "x3": 1.0}, {}, "objective.x3: unknown key (given 1.0); allowed keys: cost_s, name, noise, x1, x2"),
        ({"name": "branin", "x1": 11.0}, {}, "objective.x1: Input should be less than or equal to 10"),
        ({"name": "branin", "noise": -1.0}, {}, "objective.noise: Input should be greater than or equal to 0"),
        ({"name": "branin"}, {"space": {"objective.x1": {"uniform": [-10, 10]}}}, "value -10.0 is not allowed"),
        ({"name": "branin"}, {"space": {"objective.name": {"choice": ["branin"]}}}, "objective.name: cannot be"),
        ({"name": "hartmann6"}, {"space": {"objective.x7": {"uniform": [0, 1]}}}, "objective.x7: names no field"),
    ],
)
def test_bad_objective_input_names_the_field(objective, search, expected):
    with pytest.raises(SpecError) as info:
        spec_from_dict(study(objective, **search))
    assert expected in str(info.value)


def test_objective_value_metric_needs_an_objective():
    with pytest.raises(SpecError, match=r"search.metric: objective/value needs an `objective` section"):
        spec_from_dict({"name": "plain", "search": {"metric": "objective/value"}})


def test_a_worker_plan_evaluates_exactly_what_the_resolved_spec_says():
    spec = spec_from_dict(study({"name": "branin", "noise": 0.5}, space={"objective.x1": {"uniform": [-5, 10]}}))
    sampled = {"objective.x1": 1, "seed": 7, "train.max_epochs": 2}  # an int where a float goes
    resolved = spec.with_values(sampled)
    plan = ObjectivePlan.from_spec(spec).with_values(sampled)
    assert plan.max_epochs == 2 and plan.seed == 7
    reports: list[dict] = []
    run_objective(plan, lambda metrics, folder: reports.append(metrics))
    assert [{k: v for k, v in r.items() if k != "epoch"} for r in reports] == [
        evaluate(resolved.objective, 7, epoch, 2) for epoch in (1, 2)
    ]


def test_objective_workers_import_neither_the_spec_nor_torch():
    code = "import sys, harness.trial.objective; print(sorted({'torch', 'lightning', 'harness.study', 'mlflow', 'ray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_simulated_cost_slows_each_epoch_and_changes_nothing_else():
    import time

    plain = spec_from_dict(study({"name": "hartmann6", "noise": 0.1}))
    costly = spec_from_dict(study({"name": "hartmann6", "noise": 0.1, "cost_s": 0.05}))
    assert "cost_s" not in plain.to_dict()["objective"] and costly.to_dict()["objective"]["cost_s"] == 0.05
    reports: dict[str, list[dict]] = {"plain": [], "costly": []}
    started = time.perf_counter()
    run_objective(ObjectivePlan.from_spec(costly), lambda metrics, folder: reports["costly"].append(metrics))
    slept = time.perf_counter() - started
    run_objective(ObjectivePlan.from_spec(plain), lambda metrics, folder: reports["plain"].append(metrics))
    assert slept >= 0.05 * costly.train.max_epochs  # it slept through every epoch
    assert reports["costly"] == reports["plain"]  # the same values and noise draws
    with pytest.raises(SpecError, match="cost_s"):
        spec_from_dict(study({"name": "hartmann6", "cost_s": -1}))
