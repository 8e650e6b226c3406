"""Plain Lightning training as a notebook would use it, with no harness import: a datamodule,
a network, the module, `fit_module` with an epoch sink; resuming from a checkpoint follows the
same path as a fit that never stopped; the epoch meter and the task scoring."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_modules.data import ArrayDataModule
from lightning_modules.models import MLPConfig, SupervisedModule, build_network
from lightning_modules.models.meter import EpochMeter
from lightning_modules.optim import OptimizerConfig, ScheduleConfig
from lightning_modules.training import NonFiniteLossError, fit_module


def digits_module(max_epochs: int, lr: float = 0.01, optimizer: str = "adamw") -> tuple[ArrayDataModule, SupervisedModule]:
    dm = ArrayDataModule("digits", {"kind": "stratified", "val": 0.2, "test": 0.2}, ["standardize"], 128, steps_per_batch=None)
    dm.setup()
    torch.manual_seed(0)
    net = build_network(MLPConfig(hidden=[16]), dm.shape)
    module = SupervisedModule(
        net, dm.task, OptimizerConfig(name=optimizer, lr=lr), ScheduleConfig(name="cosine"), max_epochs,
        dm.steps_per_epoch, log_metrics=False,
    )
    return dm, module


def test_fit_module_reports_every_epoch_and_learns():
    dm, module = digits_module(4)
    rows: list[dict] = []
    fit_module(module, dm, seed=0, max_epochs=4, sink=lambda metrics, trainer: rows.append(metrics))
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert rows[-1]["val/loss"] < rows[0]["val/loss"] and rows[-1]["val/acc"] > 0.8
    assert {"train/loss", "train/acc", "lr", "weights/norm", "grad_norm/total"} <= set(rows[-1])
    assert 0 < module.evaluate(dm.test_dataloader())["test/acc"] <= 1


def test_a_resumed_fit_follows_the_uninterrupted_one(tmp_path: Path):
    dm, module = digits_module(4)
    straight: list[dict] = []
    fit_module(module, dm, seed=3, max_epochs=4, sink=lambda metrics, trainer: straight.append(metrics))

    checkpoint = tmp_path / "epoch2.ckpt"

    def save(metrics: dict, trainer) -> None:
        if metrics["epoch"] == 2:
            trainer.save_checkpoint(checkpoint)

    dm, module = digits_module(4)
    fit_module(module, dm, seed=3, max_epochs=4, sink=save, stop_after=2)
    dm, module = digits_module(4)
    resumed: list[dict] = []
    fit_module(module, dm, seed=3, max_epochs=4, sink=lambda metrics, trainer: resumed.append(metrics), resume_from=checkpoint)
    assert [row["epoch"] for row in resumed] == [3, 4]
    for before, after in zip(straight[2:], resumed):
        assert after["val/loss"] == pytest.approx(before["val/loss"], abs=1e-6)


def test_a_diverging_fit_raises_non_finite_loss():
    dm, module = digits_module(3, lr=1e6, optimizer="sgd")
    with pytest.raises(NonFiniteLossError, match="became nan|became inf"):
        fit_module(module, dm, seed=0, max_epochs=3, sink=lambda metrics, trainer: None)


def test_epoch_meter_weights_batches_by_their_sample_counts():
    meter = EpochMeter()
    meter.add("val", torch.tensor(1.0), 10, torch.tensor(5))
    meter.add("val", torch.tensor(4.0), 30, torch.tensor(30))
    assert meter.means("val") == pytest.approx({"loss": (10 + 120) / 40, "acc": 35 / 40})
    meter.reset("val")
    assert meter.means("val") == {} and not meter.has("val")


def test_a_step_group_reaches_the_module_as_a_step_group_on_its_device():
    dm, module = digits_module(1)
    group = next(iter(dm.train_dataloader()))
    moved = module.transfer_batch_to_device(group, torch.device("cpu"), 0)
    assert type(moved) is type(group) and len(moved) == len(group) == dm.steps_per_epoch
    assert all(x is gx and y is gy for (x, y), (gx, gy) in zip(moved, group))  # on its device already: no copy
    plain = module.transfer_batch_to_device(group[0], torch.device("cpu"), 0)  # a lone (x, y) goes Lightning's way
    assert torch.equal(plain[0], group[0][0])


def test_evaluation_scored_in_chunks_equals_scoring_each_batch(monkeypatch: pytest.MonkeyPatch):
    from lightning_modules.models import supervised
    from lightning_modules.models.meter import expected_calibration_error

    dm, module = digits_module(1)
    module.eval()
    x, y = dm.split_tensors("val")
    batches = [(x[i : i + 50], y[i : i + 50]) for i in range(0, len(x), 50)]  # the last one shorter
    with torch.no_grad():
        # The reference: every batch scored on its own, weighted by its samples.
        outs = [module(xb) for xb, _ in batches]
        loss = sum(module.criterion(o, yb).item() * len(yb) for o, (_, yb) in zip(outs, batches)) / len(y)
        correct = sum(module.scoring.correct(o, yb).sum().item() for o, (_, yb) in zip(outs, batches))
        calibration = sum(module.scoring.calibration(o, yb) for o, (_, yb) in zip(outs, batches))
        for chunk in (supervised.EVAL_CHUNK, 120, 1):  # one chunk; chunks of several batches; a chunk per batch
            monkeypatch.setattr(supervised, "EVAL_CHUNK", chunk)
            module.meter.reset("val")
            module._evaluate_batches("val", batches)
            means = module.meter.means("val")
            assert means["loss"] == pytest.approx(loss, rel=1e-6), chunk
            assert means["acc"] == pytest.approx(correct / len(y), rel=1e-9), chunk
            assert means["ece"] == pytest.approx(expected_calibration_error(calibration), rel=1e-5), chunk


def test_trainers_look_up_external_callbacks_once_per_process():
    import importlib.metadata

    from lightning.fabric.utilities import registry

    from lightning_modules.training.fit import _entry_points, make_trainer

    make_trainer(1, [])
    before = _entry_points.cache_info()
    make_trainer(1, [])
    after = _entry_points.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    group = "lightning.pytorch.callbacks_factory"
    assert list(registry.entry_points(group=group)) == list(importlib.metadata.entry_points(group=group))
