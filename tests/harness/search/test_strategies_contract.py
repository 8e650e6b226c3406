"""Every registered strategy honours one contract: it builds from a spec, suggests, takes
reports, completes trials on Branin through a real local Ray, saves and restores its state,
and the same seed gives the same first suggestions. Plus the checks on bad combinations,
the study space's translation for searcher libraries, and PBT applying mutated configs."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from ray import tune
from ray.tune.experiment import Experiment
from ray.tune.logger import JsonLoggerCallback
from ray.tune.search import Searcher

from harness.errors import SpecError
from harness.objectives.functions import BRANIN_OPTIMUM, branin
from harness.run.plan import StudyPlan
from harness.run.tuner import make_trainable
from harness.search import SCHEDULERS, SEARCHERS, STRATEGIES, resolve_strategy
from harness.search.adapters import SpaceCodec
from harness.search.space import to_tune_space
from harness.study import StudySpec, spec_from_dict

pytestmark = pytest.mark.timeout(300)

SPACE = {"objective.x1": {"uniform": [-5, 10]}, "objective.x2": {"uniform": [0, 15]}}
GRID_SPACE = {"objective.x1": {"grid": [-3.0, 3.0]}, "objective.x2": {"grid": [2.0, 12.0]}}
METRIC = "objective/value"


def branin_study(strategy: str = "random", seed: int = 0, **search: Any) -> StudySpec:
    searcher = search.get("searcher") or STRATEGIES.get(strategy)[0]
    return spec_from_dict(
        {
            "name": "contract",
            "seed": seed,
            "objective": {"name": "branin"},
            "train": {"max_epochs": 3},
            "search": {
                "strategy": strategy,
                "num_trials": 4,
                "metric": METRIC,
                "space": GRID_SPACE if SEARCHERS.get(searcher).grid else SPACE,
                "reduction_factor": 2,
                "perturbation_interval": 1,
                **search,
            },
            "resources": {"cpus_per_trial": 1},
        }
    )


def first_suggestions(spec: StudySpec, n: int = 3) -> list[dict[str, Any]]:
    """The first `n` configurations a freshly built searcher proposes (no Ray run needed)."""
    searcher_name, _ = resolve_strategy(spec)
    entry = SEARCHERS.get(searcher_name)
    algorithm = entry.build(spec)
    space = to_tune_space(spec.search.space, as_grid=entry.grid)
    if isinstance(algorithm, Searcher):
        assert algorithm.set_search_properties(METRIC, "min", space)
        return [algorithm.suggest(f"t{i}") for i in range(n)]
    algorithm.add_configurations([Experiment("e", run=_noop, config=space, num_samples=n)])
    return [algorithm.next_trial().config for _ in range(n)]


def _noop(config: dict) -> None:
    """A trainable for building trials; never run."""


def fit(spec: StudySpec, storage: Path) -> tuple[Any, Path]:
    """Run a study's Tuner as the runner builds it, without MLflow."""
    searcher_name, scheduler_name = resolve_strategy(spec)
    entry = SEARCHERS.get(searcher_name)
    tuner = tune.Tuner(
        make_trainable(StudyPlan.of(spec)),
        param_space=to_tune_space(spec.search.space, as_grid=entry.grid),
        tune_config=tune.TuneConfig(
            metric=spec.search.metric,
            mode=spec.search.mode,
            search_alg=entry.build(spec),
            scheduler=SCHEDULERS.get(scheduler_name)(spec),
            num_samples=1 if entry.grid else spec.search.num_trials,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="study",
            storage_path=str(storage),
            callbacks=[JsonLoggerCallback()],  # the harness's Ray keeps only this per-trial log
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if SCHEDULERS.get(scheduler_name).keeps_every_checkpoint else 1),
            verbose=0,
        ),
    )
    return tuner.fit(), storage / "study"


def reported_rows(trial: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (Path(trial.path) / "result.json").read_text().splitlines() if line]


# --- the contract, for every registered strategy -----------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_strategy_completes_trials_on_branin_and_saves_its_searcher(strategy, local_ray, tmp_path):
    spec = branin_study(strategy)
    results, experiment = fit(spec, tmp_path)
    trials = results._experiment_analysis.trials
    assert len(trials) == StudyPlan.of(spec).expected_trials == 4
    assert all(t.status == "TERMINATED" for t in trials), [(t.status, t.error_file) for t in trials]
    perturbed = 0
    for trial in trials:
        rows = reported_rows(trial)
        assert 1 <= rows[-1]["epoch"] <= 3 and all(1 <= r["epoch"] <= 3 for r in rows)
        configs = [(r["config"]["objective.x1"], r["config"]["objective.x2"]) for r in rows]
        perturbed += len(set(configs)) > 1
        for row, x in zip(rows, configs):
            # Every report is Branin at the config the trial held then: a PBT exploit restores
            # another trial's checkpoint and must evaluate the mutated config from there on.
            assert -5 <= x[0] <= 10 and 0 <= x[1] <= 15
            assert math.isclose(row[METRIC], branin(list(x)), rel_tol=1e-12)
            # Noise-free here: the regret is exactly the observed value above Branin's optimum.
            assert math.isclose(row["objective/regret"], max(0.0, row[METRIC] - BRANIN_OPTIMUM), abs_tol=1e-12)
    if strategy == "pbt":
        assert perturbed >= 1 and all(reported_rows(t)[-1]["epoch"] == 3 for t in trials)
    else:
        assert perturbed == 0
    # Tune saved the searcher's state beside the trials; a fresh searcher restores from it.
    searcher_name, _ = resolve_strategy(spec)
    restored = SEARCHERS.get(searcher_name).build(spec)
    if isinstance(restored, Searcher):
        assert list(experiment.glob("searcher-state-*.pkl"))
    else:
        assert restored.has_checkpoint(str(experiment))
    restored.restore_from_dir(str(experiment))
    study = getattr(restored, "_ot_study", None)
    if study is not None:  # Optuna: every completed trial is in the restored study
        assert len(study.trials) == 4 and all(t.value is not None for t in study.trials)


@pytest.mark.parametrize("searcher", SEARCHERS.names())
def test_same_seed_same_first_suggestions(searcher):
    scheduler = "bohb" if searcher == "bohb" else "fifo"
    spec = branin_study(searcher=searcher, scheduler=scheduler, num_trials=4)
    first = first_suggestions(spec)
    assert first == first_suggestions(spec)
    values = {k: v for config in first for k, v in config.items()}
    assert set(values) == {"objective.x1", "objective.x2"}
    if not SEARCHERS.get(searcher).grid:
        assert first != first_suggestions(spec.with_values({"seed": 1}))


@pytest.mark.parametrize("searcher", [name for name in SEARCHERS.names() if name not in ("grid", "random")])
def test_searcher_state_saved_and_restored_continues_identically(searcher, tmp_path):
    scheduler = "bohb" if searcher == "bohb" else "fifo"
    spec = branin_study(searcher=searcher, scheduler=scheduler)
    original = SEARCHERS.get(searcher).build(spec)
    original.set_search_properties(METRIC, "min", {})
    for i in range(4):
        config = original.suggest(f"t{i}")
        x = [config["objective.x1"], config["objective.x2"]]
        result = {METRIC: branin(x), "training_iteration": 1, "hyperband_info": {"budget": 3}}
        original.on_trial_result(f"t{i}", result)
        original.on_trial_complete(f"t{i}", result)
    original.save_to_dir(str(tmp_path), session_str="s")
    restored = SEARCHERS.get(searcher).build(spec)
    restored.restore_from_dir(str(tmp_path))
    assert [restored.suggest(f"n{i}") for i in range(2)] == [original.suggest(f"n{i}") for i in range(2)]


# --- translating the study's space for searcher libraries -------------------------------


def test_codec_round_trips_lists_and_quantized_ranges():
    spec = spec_from_dict(
        {
            "name": "c",
            "search": {
                "strategy": "tpe",
                "space": {
                    "model.hidden": {"choice": [[8], [16, 8]]},
                    "model.dropout": {"quniform": [0.0, 0.5, 0.1]},
                    "train.optimizer.lr": {"qloguniform": [0.001, 0.1, 0.001]},
                    "train.batch_size": {"randint": [16, 64]},
                },
            },
        }
    )
    suggestions = first_suggestions(spec, n=8)
    for config in suggestions:
        assert config["model.hidden"] in ([8], [16, 8])
        assert math.isclose(config["model.dropout"] / 0.1, round(config["model.dropout"] / 0.1), abs_tol=1e-9)
        assert 0.001 <= config["train.optimizer.lr"] <= 0.1
        assert math.isclose(config["train.optimizer.lr"] / 0.001, round(config["train.optimizer.lr"] / 0.001))
        assert isinstance(config["train.batch_size"], int) and 16 <= config["train.batch_size"] < 64
        spec.with_values(config)  # every suggestion is a valid study
    codec = SpaceCodec(spec.search.space)
    clipped = codec.clip({"model.dropout": 0.57, "train.optimizer.lr": 0.2, "train.batch_size": 70.4})
    assert clipped == {"model.dropout": 0.5, "train.optimizer.lr": 0.1, "train.batch_size": 63}  # randint: high excluded


# --- bad combinations fail at load time, naming the field ------------------------------


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"strategy": "bayes"}, "search.strategy: unknown strategy 'bayes'; known: asha, bohb, cmaes, gp, grid"),
        ({"searcher": "smac"}, "search.searcher: unknown searcher 'smac'; known: bohb, cmaes, gp, grid, mogp, motpe, nsga2, random, tpe"),
        ({"strategy": "grid"}, "search.space.objective.x1: the grid searcher needs a finite set of values"),
        ({"searcher": "bohb", "scheduler": "asha"}, "search.scheduler: the bohb searcher works only with the bohb"),
        ({"searcher": "random", "scheduler": "bohb"}, "search.searcher: the bohb scheduler works only with the bohb"),
        ({"strategy": "pbt", "searcher": "tpe"}, "search.searcher: the pbt scheduler works only with the random"),
        ({"strategy": "tpe", "space": {}}, "search.space: the tpe searcher needs at least one searched field"),
        ({"strategy": "pbt", "space": {}}, "search.space: the pbt scheduler needs at least one searched field"),
        ({"strategy": "pbt", "perturbation_interval": 3}, "search.perturbation_interval: must be < the epochs"),
        ({"strategy": "asha", "grace_period": 3}, "search.grace_period: the asha scheduler stops trials only after"),
        ({"metric": "val/loss"}, "search.metric: an objective study reports objective/value"),
        ({"mode": "max"}, "search.mode: objectives are minimized"),
    ],
)
def test_bad_strategy_settings_are_clear_errors(search, expected):
    base = branin_study().to_dict()
    with pytest.raises(SpecError) as info:
        spec_from_dict({**base, "search": {**base["search"], **search}})
    assert expected in str(info.value)


def test_pbt_refuses_fields_a_checkpoint_cannot_take():
    with pytest.raises(SpecError, match=r"search.space.model.hidden: the pbt scheduler .* can mutate only: "):
        spec_from_dict(
            {
                "name": "p",
                "search": {
                    "strategy": "pbt",
                    "space": {"model.hidden": {"choice": [[8], [16]]}, "train.optimizer.lr": {"uniform": [0.01, 0.1]}},
                },
            }
        )


# --- PBT's exploit on a real training trial -------------------------------------------


def test_a_restored_training_trial_takes_the_mutated_optimizer_settings():
    """PBT restores a checkpoint under a new config: the new lr and momentum must be used,
    the schedule's progress kept; a plain resume must change nothing."""
    from harness.trial.training import fit_trial

    spec = spec_from_dict(
        {
            "name": "p",
            "model": {"kind": "mlp", "hidden": [8]},
            "train": {
                "max_epochs": 3,
                "batch_size": 256,
                "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.5},
                "schedule": {"name": "cosine"},
            },
        }
    )
    folder = Path(tempfile.mkdtemp())
    lrs: dict[int, float] = {}

    def sink(metrics: dict[str, Any], trainer: Any) -> None:
        lrs[metrics["epoch"]] = metrics["lr"]
        if metrics["epoch"] == 1:
            trainer.save_checkpoint(folder / "epoch1.ckpt")

    fit_trial(spec, sink, stop_after=1)
    fit_trial(spec, sink, resume_from=folder / "epoch1.ckpt")
    plain = dict(lrs)
    mutated = spec.with_values({"train.optimizer.lr": 0.05, "train.optimizer.momentum": 0.9})
    module = fit_trial(mutated, sink, resume_from=folder / "epoch1.ckpt")
    assert math.isclose(lrs[2], 5 * plain[2], rel_tol=1e-9)  # same point of the schedule, new base LR
    assert module.trainer.optimizers[0].param_groups[0]["momentum"] == 0.9


def test_checkpoint_pruner_keeps_what_a_recent_saved_state_can_name(tmp_path):
    from types import SimpleNamespace

    from harness.run.callbacks import CheckpointPruner

    trial_dir = tmp_path / "trial-a"
    pruner = CheckpointPruner()
    trial = SimpleNamespace(trial_id="a")

    def checkpoint(index: int) -> None:
        path = trial_dir / f"checkpoint_{index:06d}"
        path.mkdir(parents=True)
        pruner.on_checkpoint(iteration=index, trials=[trial], trial=trial, checkpoint=SimpleNamespace(path=str(path)))

    def kept() -> list[int]:
        return sorted(int(p.name.split("_")[1]) for p in trial_dir.glob("checkpoint_*"))

    checkpoint(0)
    pruner.get_state()  # a save naming 0
    checkpoint(1)
    checkpoint(2)
    pruner.get_state()  # a save naming 2
    assert kept() == [0, 1, 2]  # the state on storage may still be the one naming 0
    checkpoint(3)
    pruner.get_state()  # a save naming 3: the one naming 0 is two saves back
    assert kept() == [0, 1, 2, 3]
    pruner.get_state()  # a save naming 3 again: the one naming 2 is two saves back
    assert kept() == [2, 3]
