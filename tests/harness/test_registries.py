"""Every extension point is a registry with clear unknown-name errors."""

from __future__ import annotations

import pytest

from harness.search import SCHEDULERS, SEARCHERS, STRATEGIES, resolve_strategy
from harness.study import spec_from_dict
from lightning_modules.data import DATASETS, PREPROCESSORS, SPLITS
from lightning_modules.models import MODELS
from lightning_modules.optim import OPTIMIZERS, SCHEDULES
from lightning_modules.registry import Registry, UnknownEntryError


def test_registry_register_get_and_errors():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    assert reg.get("a") == 1 and "a" in reg and reg.names() == ["a"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(2)
    with pytest.raises(UnknownEntryError, match="unknown widget 'b'; known: a"):
        reg.get("b")


def test_built_in_entries():
    assert "digits" in DATASETS and "mlp" in MODELS
    assert {"stratified", "random"} <= set(SPLITS.names())
    assert {"standardize", "minmax"} <= set(PREPROCESSORS.names())
    assert {"adamw", "adam", "sgd"} <= set(OPTIMIZERS.names())
    assert {"constant", "cosine"} <= set(SCHEDULES.names())
    assert {"grid", "random", "asha", "hyperband"} <= set(STRATEGIES.names())


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_builds_seeded_ray_objects(name):
    spec = spec_from_dict(
        {"name": "s", "seed": 7, "search": {"strategy": name, "space": {"train.optimizer.lr": {"choice": [0.01, 0.1]}}}}
    )
    searcher, scheduler = resolve_strategy(spec)
    assert SEARCHERS.get(searcher).build(spec) is not None
    assert SCHEDULERS.get(scheduler)(spec) is not None


def test_searcher_and_scheduler_override_the_preset():
    spec = spec_from_dict({"name": "s", "search": {"strategy": "random", "scheduler": "asha"}})
    assert resolve_strategy(spec) == ("random", "asha")


def test_same_seed_same_configurations():
    from ray.tune.experiment import Experiment
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from harness.search.space import to_tune_space

    spec = spec_from_dict(
        {"name": "s", "seed": 3, "search": {"space": {"train.optimizer.lr": {"loguniform": [1e-4, 1e-1]}}}}
    )

    def first(n: int, seed: int) -> list[float]:
        gen = SEARCHERS.get("random").build(spec.with_values({"seed": seed}))
        assert isinstance(gen, BasicVariantGenerator)
        space = to_tune_space(spec.search.space, as_grid=False)
        gen.add_configurations([Experiment("e", run=_noop, config=space, num_samples=n)])
        return [gen.next_trial().config["train.optimizer.lr"] for _ in range(n)]

    assert first(4, 3) == first(4, 3)
    assert first(4, 3) != first(4, 4)


def _noop(config: dict) -> None:
    """A trainable for building trials; never run."""
