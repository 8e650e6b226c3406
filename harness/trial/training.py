"""A training trial, flat: seed, build the datamodule and module from the resolved spec, fit,
report each epoch. Ray Tune runs it through `harness.trial.ray_adapter`; `harness reproduce`
and the benchmarks call `fit_trial` directly, without Ray."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from harness.study import StudySpec
from harness.trial.build import build, threads
from lightning_modules.data import ArrayDataModule
from lightning_modules.models import SupervisedModule
from lightning_modules.optim import cycle_ends
from lightning_modules.training import (
    EpochSink,
    MetricCallback,
    SnapshotEnsemble,
    ensemble_metrics,
    fit_module,
    regime_metrics,
    snapshots_in,
)

LR_FOUND = "lr_find/suggested_lr"


def fit_trial(
    spec: StudySpec,
    sink: EpochSink,
    *,
    resume_from: Path | None = None,
    stop_after: int | None = None,
    accelerator: str = "cpu",
) -> SupervisedModule:
    """Train one resolved spec, calling `sink(metrics, trainer)` after every epoch."""
    if spec.train.lr_find:
        spec, sink = _at_found_lr(spec, sink)
    L.seed_everything(spec.seed, workers=True, verbose=False)
    torch.set_num_threads(threads(spec))
    dm, module = build(spec)
    fit_module(
        module, dm, seed=spec.seed, max_epochs=spec.train.max_epochs, sink=sink,
        early_stopping=spec.train.early_stopping, resume_from=resume_from, stop_after=stop_after,
        accelerator=accelerator, metric_callbacks=metric_callbacks(spec),
    )
    return module


def _at_found_lr(spec: StudySpec, sink: EpochSink) -> tuple[StudySpec, EpochSink]:
    """The spec at the LR the range test suggests, and a sink that reports that LR each epoch."""
    from harness.trial.lr_find import at_found_lr  # only trials that ask for the sweep load it

    spec, found = at_found_lr(spec)

    def report(metrics: dict[str, float], trainer: L.Trainer) -> None:
        sink({**metrics, LR_FOUND: found}, trainer)

    return spec, report


def metric_callbacks(spec: StudySpec) -> list[MetricCallback]:
    """Callbacks whose scores join each epoch's report (the snapshot ensemble)."""
    if not spec.train.snapshot_ensemble:
        return []
    ends = cycle_ends(spec.train.schedule, spec.train.max_epochs)
    return [SnapshotEnsemble(ends, spec.train.snapshot_ensemble)]


def restored(spec: StudySpec, checkpoint: Path) -> tuple[ArrayDataModule, SupervisedModule]:
    """The datamodule and the module with a trial checkpoint's weights."""
    torch.set_num_threads(threads(spec))
    dm, module = build(spec)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    return dm, module


def evaluate_checkpoint(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    """Score a trained trial on the sealed test split: the one place the test split is read."""
    torch.set_num_threads(threads(spec))
    dm, module = build(spec)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    metrics = {**module.evaluate(dm.test_dataloader()), **regime_metrics(module, dm, "test")}
    metrics.update(reliability_metrics(module.meter.reliability("test"), "test"))
    snapshots = snapshots_in(state)
    if snapshots:
        metrics.update(ensemble_metrics(module, snapshots, *dm.split_tensors("test"), "test"))
    return metrics


def reliability_metrics(table: list[dict[str, float]], split: str) -> dict[str, float]:
    """A reliability table as metrics: `<split>/reliability/bin_07/accuracy` (and confidence,
    share) per non-empty confidence bin, named by the bin's lower edge in hundredths."""
    return {
        f"{split}/reliability/bin_{round(row['lower'] * 100):02d}/{key}": row[key]
        for row in table
        for key in ("accuracy", "confidence", "share")
    }
