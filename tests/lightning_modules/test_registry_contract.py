"""Every entry of every lightning_modules registry, from its default config: built, run on
tiny data, and its config round-tripped. No harness import: these blocks stand alone."""

from __future__ import annotations

import math
import typing

import numpy as np
import pytest
import torch

from lightning_modules.data import DATASETS, PREPROCESSORS, SPLITS, ArrayDataset, prepare_splits
from lightning_modules.data.datasets import load_dataset
from lightning_modules.data.preprocessing import SplitArrays
from lightning_modules.data.splits import split_dataset
from lightning_modules.models import MODELS, SupervisedModule, build_network
from lightning_modules.models.tasks import TASKS
from lightning_modules.optim import (
    OPTIMIZERS,
    SCHEDULES,
    OptimizerConfig,
    ScheduleConfig,
    build_optimizer,
    build_scheduler,
)
from lightning_modules.regularizers import REGULARIZERS, RegularizationConfig

# Settings for entries whose defaults need a value (a regime column) or are larger than a test needs.
REQUIRED = {"group": {"column": "temperature"}, "regime": {"column": "temperature"}, "regime_bins": {"column": "temperature"}}
TINY_MOTOR = {"name": "motor", "num_samples": 120, "length": 32}  # fft's default 16 bins need 32 steps
SCHEDULE_SETTINGS = {"warmup_cosine": {"warmup_epochs": 1}}  # it has no default warmup to ramp over


def roundtrip(config: typing.Any) -> None:
    assert type(config).model_validate(config.model_dump(mode="json")) == config


@pytest.fixture(scope="module")
def motor() -> ArrayDataset:
    return load_dataset(DATASETS.get("motor").config.model_validate(TINY_MOTOR), 0)


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_loads_from_its_default_config(name: str):
    entry = DATASETS.get(name)
    config = entry.config()
    roundtrip(config)
    data = load_dataset(config, 0)
    assert len(data.x) == len(data.y) > 0 and data.kind == entry.kind
    assert set(data.regimes) == set(entry.regimes)
    assert all(len(values) == len(data.y) for values in data.regimes.values())


@pytest.mark.parametrize("name", SPLITS.names())
def test_split_partitions_the_samples(name: str, motor: ArrayDataset):
    config = SPLITS.get(name).config.model_validate({"kind": name, **REQUIRED.get(name, {})})
    roundtrip(config)
    idx = split_dataset(motor, config, seed=0)
    parts = [idx.train, idx.val, idx.test]
    assert all(len(p) > 0 for p in parts)
    every = np.concatenate(parts)
    assert len(np.unique(every)) == len(every)  # disjoint
    assert set(every) <= set(range(len(motor.y)))


@pytest.mark.parametrize("name", PREPROCESSORS.names())
def test_preprocessing_step_fits_on_train_and_applies_to_every_split(name: str, motor: ArrayDataset):
    config = PREPROCESSORS.get(name).config.model_validate({"name": name, **REQUIRED.get(name, {})})
    roundtrip(config)
    kind = "sequence" if "sequence" in config.kinds else config.kinds[0]
    if kind == "sequence":
        x, regimes = motor.x, motor.regimes
    else:
        x = motor.x.reshape(len(motor.x), -1) if kind == "tabular" else motor.x[:, None, :, :4].transpose(0, 1, 3, 2)
        regimes = motor.regimes
    rows = np.arange(len(x))
    parts = {
        split: SplitArrays(x[r], motor.y[r], {k: v[r] for k, v in regimes.items()})
        for split, r in zip(("train", "val", "test"), np.array_split(rows, [80, 100]))
    }
    prepared = prepare_splits([config], parts, kind)
    assert set(prepared.splits) == {"train", "val", "test"}
    for split, part in prepared.splits.items():
        assert len(part.x) == len(part.y) and np.isfinite(part.x).all()
        # Every regime column is labelled with bins in every split, by this step or by default.
        assert set(prepared.groups[split]) == set(regimes)
    assert prepared.stats["data/train_samples"] == len(prepared.splits["train"].y)


def _shape_for(name: str) -> tuple[str, tuple[int, ...]]:
    accepts = MODELS.get(name).accepts
    if "tabular" in accepts:
        return "tabular", (6,)
    if "sequence" in accepts:
        return "sequence", (5, 3)
    return "image", (1, 8, 8)


@pytest.mark.parametrize("name", MODELS.names())
def test_model_builds_and_runs_a_batch(name: str):
    from lightning_modules.data.datasets import DataShape

    config = MODELS.get(name).config()
    roundtrip(config)
    kind, features = _shape_for(name)
    net = build_network(config, DataShape(kind, features, 4, False))  # type: ignore[arg-type]
    out = net(torch.randn(7, *features))
    assert out.shape == (7, 4) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_takes_a_step(name: str):
    config = OptimizerConfig(name=name, lr=0.05)
    roundtrip(config)
    w = torch.nn.Parameter(torch.ones(3))
    optimizer = build_optimizer([w], config)
    (w**2).sum().backward()
    optimizer.step()
    assert (w.detach() < 1).all()


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedule_steps_with_finite_positive_rates(name: str):
    config = ScheduleConfig(name=name, **SCHEDULE_SETTINGS.get(name, {}))
    roundtrip(config)
    config.check_fits(max_epochs=12)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    scheduler = build_scheduler(optimizer, config, total_steps=12 * 4, steps_per_epoch=4)
    for _ in range(12 * 4):
        optimizer.step()
        scheduler.step(1.0) if SCHEDULES.get(name).per_epoch else scheduler.step()
        lr = optimizer.param_groups[0]["lr"]
        assert math.isfinite(lr) and lr >= 0


@pytest.mark.parametrize("name", REGULARIZERS.names())
def test_regularizer_trains_from_its_default_and_when_switched_on(name: str):
    entry = REGULARIZERS.get(name)
    default = RegularizationConfig()
    roundtrip(default)
    on = getattr(default, name)
    if isinstance(on, float):
        on = 0.1
    elif isinstance(on, int):
        on = 1
    elif hasattr(on, "model_fields") and "strength" in on.model_fields:
        on = on.model_copy(update={"strength": 0.1})
    assert entry.build(getattr(default, name), "classification") is None  # the default is off
    config = RegularizationConfig.model_validate({name: on.model_dump() if hasattr(on, "model_dump") else on})
    # Inputs of a kind the entry transforms (augmentations declare theirs), flattened for the net.
    shape = {"image": (1, 3, 2), "sequence": (3, 2)}.get(entry.kinds[0] if entry.kinds else "", (6,))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4))
    module = SupervisedModule(net, "classification", OptimizerConfig(lr=0.01), ScheduleConfig(), 1, 1, False, config)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01)
    loss = module.manual_step(torch.randn(16, *shape), torch.randint(0, 4, (16,)), optimizer)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", TASKS.names())
def test_task_scores_agree_with_their_means(name: str):
    task = TASKS.get(name)
    out = task.output(torch.randn(9, 3) if name == "classification" else torch.randn(9, 1))
    y = torch.randint(0, 3, (9,)) if name == "classification" else torch.randn(9)
    assert torch.allclose(task.sample_losses(out, y).mean(), task.loss(out, y), atol=1e-6)
    correct = task.correct(out, y)
    assert (correct is None) == ("acc" not in task.metrics)


def test_a_tagged_registry_refuses_a_config_whose_tag_disagrees():
    from pydantic import BaseModel

    from lightning_modules.registry import Registry

    class WidgetConfig(BaseModel):
        kind: typing.Literal["widget"] = "widget"

    class Entry:
        config = WidgetConfig

    widgets: Registry[Entry] = Registry("widget", tag="kind")
    widgets.register("widget")(Entry())
    with pytest.raises(ValueError, match="its config's kind must admit 'gadget'"):
        widgets.register("gadget")(Entry())
