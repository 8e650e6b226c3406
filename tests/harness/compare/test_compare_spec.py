"""The comparison spec: what each (strategy, seed) execution's study becomes, and every bad input
reported at its field path before anything runs; the study spec's budget fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.compare import UNBOUNDED_TRIALS, load_comparison, split_strategy
from harness.compare.execute import parallel_of
from harness.errors import SpecError
from harness.objectives import OBJECTIVES
from harness.search import SCHEDULERS, SEARCHERS, STRATEGIES
from harness.study import spec_from_dict

ROOT = Path(__file__).resolve().parents[3]
BRANIN = {
    "name": "branin",
    "objective": {"name": "branin"},
    "train": {"max_epochs": 3},
    "search": {
        "strategy": "asha",  # replaced by each execution's strategy
        "metric": "objective/value",
        "space": {"objective.x1": {"uniform": [-5, 10]}, "objective.x2": {"uniform": [0, 15]}},
    },
}
TRAINING = {"name": "mlp", "model": {"kind": "mlp", "hidden": [8]}, "train": {"max_epochs": 2}}


def comparison(folder: Path, **changes) -> Path:
    raw = {"name": "cmp", "study": BRANIN, "strategies": ["random", "tpe"], "seeds": 2, "budget": {"trials": 8}}
    raw.update(changes)
    path = folder / "cmp.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_comparison(path)
    return str(info.value)


def test_each_execution_gets_the_strategy_seed_and_budget(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BRANIN))
    spec = load_comparison(comparison(tmp_path, study="base.yaml", strategies=["random", "tpe+asha"], seeds=3))
    assert spec.seed_list() == [0, 1, 2]
    study = spec.study_for("tpe+asha", 2)
    assert study.name == "cmp" and study.seed == 2  # the comparison's experiment
    assert (study.search.strategy, study.search.searcher, study.search.scheduler) == ("random", "tpe", "asha")
    preset = spec.study_for("random", 0).search
    assert (preset.strategy, preset.searcher, preset.scheduler) == ("random", None, None)  # base's asha is gone
    assert preset.num_trials == 8 and preset.budget_epochs is None and preset.time_budget_s is None


def test_epoch_and_time_budgets_become_study_budgets(tmp_path: Path) -> None:
    search = load_comparison(comparison(tmp_path, budget={"epochs": 20}, seeds=[5, 7])).study_for("tpe", 7).search
    assert (search.budget_epochs, search.num_trials, search.time_budget_s) == (20, 20, None)
    search = load_comparison(comparison(tmp_path, budget={"seconds": 2.5})).study_for("tpe", 0).search
    assert (search.time_budget_s, search.num_trials, search.budget_epochs) == (2.5, UNBOUNDED_TRIALS, None)


def test_executions_at_once(tmp_path: Path) -> None:
    """A number is taken as given (never more than there are executions); `auto` runs a
    budget in seconds one at a time, since executions sharing CPUs would get unequal time."""
    assert load_comparison(comparison(tmp_path)).parallel == "auto"
    assert parallel_of(load_comparison(comparison(tmp_path, parallel=3)), 4) == 3
    assert parallel_of(load_comparison(comparison(tmp_path, parallel=8)), 4) == 4
    assert parallel_of(load_comparison(comparison(tmp_path, parallel=8)), 1) == 1
    assert parallel_of(load_comparison(comparison(tmp_path, budget={"seconds": 5})), 4) == 1


def test_strategy_names() -> None:
    assert split_strategy("gp") == ("gp", None, None)
    assert split_strategy("bohb+bohb") == ("random", "bohb", "bohb")
    with pytest.raises(ValueError, match="unknown strategy 'bayes'; known: " + ", ".join(STRATEGIES.names())):
        split_strategy("bayes")


BAD = {
    "unknown strategy": (
        {"strategies": ["random", "bayes"]},
        [f"strategies[1]: unknown strategy 'bayes'; known: {', '.join(STRATEGIES.names())}"],
    ),
    "unknown searcher+scheduler": (
        {"strategies": ["random", "tpe+fast"]},
        [
            "strategies[1]: unknown searcher+scheduler 'tpe+fast'",
            f"searchers: {', '.join(SEARCHERS.names())}; schedulers: {', '.join(SCHEDULERS.names())}",
        ],
    ),
    "a strategy twice": ({"strategies": ["random", "tpe", "tpe"]}, ["strategies[2]: 'tpe' is listed twice"]),
    "grid over a continuous range": (
        {"strategies": ["random", "grid"]},
        ["strategies[1] (grid): search.space.objective.x1: the grid searcher needs a finite set of values"],
    ),
    "a budget of 0": (
        {"budget": {"trials": 0}},
        ["budget.trials: Input should be greater than or equal to 1 (given 0)"],
    ),
    "two budgets": ({"budget": {"trials": 5, "epochs": 9}}, ["budget: set exactly one of trials, epochs, seconds"]),
    "no budget": ({"budget": {}}, ["budget: set exactly one of trials, epochs, seconds (given none)"]),
    "seconds of 0": ({"budget": {"seconds": 0}}, ["budget.seconds: Input should be greater than 0"]),
    "target below the optimum": (
        {"target": 0.1},
        [f"target: below the known optimum of branin ({OBJECTIVES.get('branin').optimum:.6g})", "(given 0.1"],
    ),
    "baseline not compared": (
        {"strategies": ["tpe", "gp"]},
        ["baseline: 'random' is not among the strategies (tpe, gp)"],
    ),
    "no seeds": ({"seeds": 0}, ["seeds: a count of seeds must be >= 1 (given 0)"]),
    "repeated seeds": (
        {"seeds": [1, 1]},
        ["seeds: a list of seeds must be non-empty and without repeats (given [1, 1])"],
    ),
    "unknown key": ({"budgets": {"trials": 3}}, ["budgets: unknown key; allowed keys: baseline, budget, description"]),
    "epochs below one trial": ({"budget": {"epochs": 2}}, ["budget.epochs: 2 is fewer than one trial's epochs"]),
    "pbt on an epoch budget": (
        {"strategies": ["random", "pbt"], "budget": {"epochs": 30}},
        ["strategies[1] (pbt): pbt trains a population of search.num_trials trials; give it a budget in trials"],
    ),
    "a grid larger than the budget": (
        {
            "strategies": ["random", "grid"],
            "study": {
                **BRANIN,
                "search": {
                    **BRANIN["search"],
                    "space": {"objective.x1": {"grid": [0, 1, 2, 3, 4, 5]}, "objective.x2": {"choice": [1, 2]}},
                },
            },
        },
        ["strategies[1] (grid): the grid has 12 points, more than budget.trials (8)"],
    ),
    "no executions at once": ({"parallel": 0}, ["parallel: a number of executions at once (1 to 1000) or auto (given 0)"]),
    "parallel as a word": ({"parallel": "many"}, ["parallel: a number of executions at once (1 to 1000) or auto (given 'many')"]),
    "a problem of the base study": (
        {"study": {**BRANIN, "train": {"max_epochs": 0}}},
        ["study.train.max_epochs: Input should be greater than or equal to 1 (given 0)"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_comparisons_name_the_field(case: str, tmp_path: Path) -> None:
    changes, expected = BAD[case]
    message = error_of(comparison(tmp_path, **changes))
    assert "invalid comparison" in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_base_study_problems_are_said_once_and_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BRANIN, "train": {"max_epochs": "x"}}))
    message = error_of(comparison(tmp_path, study="base.yaml"))
    assert message.count("train.max_epochs") == 1 and "study (base.yaml): train.max_epochs" in message
    assert "study: no file" in error_of(comparison(tmp_path, study="missing.yaml"))


@pytest.mark.parametrize(
    ("metric", "mode", "target", "fragment"),
    [
        ("val/loss", "min", -0.1, "target: a loss is never negative"),
        ("val/acc", "max", 1.5, "target: an accuracy lies in [0, 1]"),
    ],
)
def test_targets_outside_what_the_metric_can_reach(tmp_path, metric, mode, target, fragment) -> None:
    study = {
        **TRAINING,
        "search": {"metric": metric, "mode": mode, "space": {"train.optimizer.lr": {"loguniform": [1e-3, 1e-1]}}},
    }
    message = error_of(comparison(tmp_path, study=study, target=target))
    assert fragment in message and f"metric {metric}, mode {mode}" in message


def test_the_shipped_comparison_is_valid() -> None:
    spec = load_comparison(ROOT / "studies" / "compare_strategies.yaml")
    assert {"random", "tpe", "gp", "asha"} <= set(spec.strategies) and 3 <= len(spec.seed_list()) <= 5
    assert spec.baseline == "random" and spec.target is not None


def test_study_budgets_validate_and_stay_out_of_the_hash_when_unset() -> None:
    base = {
        "name": "s",
        "objective": {"name": "branin"},
        "train": {"max_epochs": 1},
        "search": {"metric": "objective/value", "space": {"objective.x1": {"uniform": [-5, 10]}}},
    }
    plain = spec_from_dict(base)
    assert "budget_epochs" not in plain.to_dict()["search"] and "time_budget_s" not in plain.to_dict()["search"]
    budgeted = spec_from_dict(base, {"search.budget_epochs": 7, "search.time_budget_s": 30})
    assert budgeted.to_dict()["search"]["budget_epochs"] == 7 and budgeted.spec_hash() != plain.spec_hash()
    with pytest.raises(
        SpecError, match=r"search.budget_epochs: Input should be greater than or equal to 1 \(given 0\)"
    ):
        spec_from_dict(base, {"search.budget_epochs": 0})
    with pytest.raises(SpecError, match=r"search.time_budget_s: Input should be greater than 0"):
        spec_from_dict(base, {"search.time_budget_s": -1})
