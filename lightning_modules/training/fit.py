"""The Trainer a trial uses and one reseeded, reported fit of a module."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import warnings
from importlib.metadata import EntryPoints
from pathlib import Path

import lightning as L
import torch

from lightning_modules.regularizers import EarlyStopping, EarlyStoppingConfig
from lightning_modules.training.callbacks import EpochReporter, EpochSink, MetricCallback, SpecOnRestore


def quiet_lightning() -> None:
    """Keep Lightning's per-fit banners and tips out of study output."""
    warnings.filterwarnings("ignore", module="lightning")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


@functools.cache
def _entry_points(group: str) -> EntryPoints:
    return importlib.metadata.entry_points(group=group)


def _look_up_callback_factories_once() -> None:
    """Every Trainer's constructor looks up external callback factories (an entry-point group)
    by scanning the metadata of every installed distribution: about 3 ms here, once per trial,
    a tenth of what a quickstart trial costs over a raw loop. What is installed does not change
    under a running process, so the group is looked up once; each Trainer still calls the
    factories for callbacks of its own."""
    from lightning.fabric.utilities import registry

    if registry.entry_points is importlib.metadata.entry_points:  # not when Lightning changed it
        registry.entry_points = lambda group: _entry_points(group)


def make_trainer(max_epochs: int, callbacks: list[L.Callback], accelerator: str = "cpu") -> L.Trainer:
    """A Trainer with the per-step extras off: no logger, progress bar, summary or sanity run.

    Checkpoints are written by the epoch sink, where the caller needs them.
    """
    _look_up_callback_factories_once()
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )


def fit_module(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    seed: int,
    max_epochs: int,
    sink: EpochSink,
    early_stopping: EarlyStoppingConfig | None = None,
    resume_from: Path | None = None,
    stop_after: int | None = None,
    accelerator: str = "cpu",
    threads: int | None = None,
    metric_callbacks: list[MetricCallback] | None = None,
) -> L.LightningModule:
    """Fit `module`, reseeding each epoch from `seed` and calling `sink(metrics, trainer)` after
    every epoch; `resume_from` continues from a checkpoint, `stop_after` ends after that epoch;
    `metric_callbacks` add their scores to each epoch's metrics."""
    quiet_lightning()
    if threads is not None:
        # A fixed thread count keeps floating-point reductions identical between runs.
        torch.set_num_threads(max(1, threads))
    callbacks: list[L.Callback] = [*(metric_callbacks or []), EpochReporter(seed, sink, stop_after)]
    if early_stopping is not None and early_stopping.patience is not None:
        callbacks.append(EarlyStopping(early_stopping))
    if resume_from is not None:
        callbacks.append(SpecOnRestore())
    trainer = make_trainer(max_epochs, callbacks, accelerator)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    return module
