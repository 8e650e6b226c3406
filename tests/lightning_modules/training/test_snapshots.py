"""Snapshot ensembles: where SGDR's cycles end, what the ensemble reports, and that a
checkpoint carries the snapshots."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.data import ArrayDataModule
from lightning_modules.models import SupervisedModule, build_network
from lightning_modules.optim import OptimizerConfig, ScheduleConfig, cycle_ends
from lightning_modules.training import SnapshotEnsemble, ensemble_metrics, fit_module, snapshots_in


def test_cycle_ends_follow_warmup_length_and_growth() -> None:
    cfg = ScheduleConfig(name="sgdr", restart_epochs=3, restart_mult=2, warmup_epochs=1)
    assert cycle_ends(cfg, 22) == [4, 10, 22]
    assert cycle_ends(cfg, 21) == [4, 10]
    with pytest.raises(ValueError, match="sgdr"):
        cycle_ends(ScheduleConfig(name="cosine"), 10)


def _module(dm: ArrayDataModule, epochs: int) -> SupervisedModule:
    from lightning_modules.models.mlp import MLPConfig

    return SupervisedModule(
        build_network(MLPConfig(hidden=[16]), dm.shape), task=dm.task, optimizer=OptimizerConfig(name="sgd", lr=0.1, momentum=0.9),
        schedule=ScheduleConfig(name="sgdr", restart_epochs=2), max_epochs=epochs, steps_per_epoch=dm.steps_per_epoch,
        log_metrics=False,
    )


def test_an_ensemble_of_one_snapshot_scores_as_the_model() -> None:
    torch.manual_seed(0)
    dm = ArrayDataModule("digits", {"kind": "stratified", "val": 0.2, "test": 0.2}, ["standardize"], batch_size=64)
    dm.setup()
    module = _module(dm, 1)
    x, y = dm.split_tensors("val")
    single = module.evaluate([(x, y)])
    weights = {k: v.clone() for k, v in module.net.state_dict().items()}
    scored = ensemble_metrics(module, [weights, weights], x, y, "val")
    assert scored["val/snapshot_ensemble/loss"] == pytest.approx(single["test/loss"], rel=1e-5)
    assert scored["val/snapshot_ensemble/acc"] == pytest.approx(single["test/acc"])


def test_snapshots_are_taken_at_cycle_ends_reported_and_checkpointed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    dm = ArrayDataModule("digits", {"kind": "stratified", "val": 0.2, "test": 0.2}, ["standardize"], batch_size=64)
    module = _module(dm, 6)
    rows, checkpoint = [], tmp_path / "t.ckpt"

    def sink(metrics, trainer) -> None:  # type: ignore[no-untyped-def]
        rows.append(metrics)
        trainer.save_checkpoint(checkpoint)

    ensemble = SnapshotEnsemble(cycle_ends(ScheduleConfig(name="sgdr", restart_epochs=2), 6), size=2)
    fit_module(module, dm, seed=0, max_epochs=6, sink=sink, metric_callbacks=[ensemble])
    assert [r.get("snapshot_ensemble/snapshots") for r in rows] == [None, 1.0, 1.0, 2.0, 2.0, 2.0]  # kept: the last 2 of 3
    assert rows[1]["val/snapshot_ensemble/loss"] == pytest.approx(rows[1]["val/loss"], rel=1e-5)  # one snapshot: the model
    assert len(ensemble.snapshots) == 2
    saved = snapshots_in(torch.load(checkpoint, weights_only=False))
    assert len(saved) == 2
    assert all(torch.equal(a[key], b[key]) for a, b in zip(saved, ensemble.snapshots) for key in a)
    assert not all(torch.equal(saved[0][key], saved[1][key]) for key in saved[0])  # two different minima
