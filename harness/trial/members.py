"""Trials that train several models on related data (the training sets of a bias-variance
trial, the regime specialists beside a global model): each model is one ordinary fit, one
after another, its per-epoch metrics kept; the trial then reports epoch by epoch what the
kind computes from all of them. One fit per model keeps a trial of many small fits in seconds
(a Trainer per epoch per model, as k-fold's lockstep needs, costs several times more); the
price is that an interrupted trial starts over."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L

from harness.study import StudySpec
from harness.trial.kfold import FOLD_FILE, FoldCheckpoints
from lightning_modules.models import SupervisedModule
from lightning_modules.training import EpochSink, fit_module
from lightning_modules.training.callbacks import check_finite

# datamodule (any LightningDataModule), module, seed
Member = tuple[L.LightningDataModule, SupervisedModule, int]
# After each epoch of member k: what to keep beside its metrics (predictions, say).
Probe = Callable[[int], Any]


@contextmanager
def checkpoint_folder() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="harness-members-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fit_members(
    spec: StudySpec, members: list[Member], folder: Path, *, probe: Probe | None = None,
    stop_after: int | None = None, accelerator: str = "cpu",
) -> tuple[list[list[dict[str, Any]]], list[list[Any]], list[Path]]:
    """Fit every member for the study's epochs; returns each member's epoch metrics, its probe
    values per epoch, and its final checkpoint file in `folder`."""
    histories: list[list[dict[str, Any]]] = []
    probed: list[list[Any]] = []
    files = [folder / FOLD_FILE.format(k) for k in range(len(members))]
    for k, (dm, module, seed) in enumerate(members):
        rows: list[dict[str, Any]] = []
        kept: list[Any] = []
        trainers: list[L.Trainer] = []

        def record(
            metrics: dict[str, Any], trainer: L.Trainer, k: int = k, rows: list = rows, kept: list = kept,
            trainers: list = trainers,
        ) -> None:
            rows.append(metrics)
            if probe is not None:
                kept.append(probe(k))
            trainers[:] = [trainer]  # the fit's trainer, to save the final checkpoint with

        fit_module(
            module, dm, seed=seed, max_epochs=spec.train.max_epochs, sink=record,
            early_stopping=spec.train.early_stopping, stop_after=stop_after, accelerator=accelerator,
        )
        trainers[0].save_checkpoint(files[k])
        histories.append(rows)
        probed.append(kept)
    return histories, probed, files


def at_epoch(values: list[Any], epoch: int) -> Any:
    """A member's value at `epoch` (0-based); a fit that stopped early keeps its last one."""
    return values[min(epoch, len(values) - 1)]


def report_epochs(
    histories: list[list[dict[str, Any]]], files: list[Path], modules: list[SupervisedModule], sink: EpochSink,
    combine: Callable[[int], dict[str, Any]], what: str,
) -> None:
    """Report every epoch `combine(epoch)`; the last report carries every member's checkpoint
    (earlier ones an index only: nothing resumes mid-trial)."""
    epochs = max(len(h) for h in histories)
    for epoch in range(epochs):
        metrics: dict[str, Any] = {"epoch": epoch + 1, **combine(epoch)}
        check_finite(metrics, epoch + 1, what)
        last = epoch + 1 == epochs
        sink(metrics, FoldCheckpoints(files if last else [], modules, epoch + 1, None))  # type: ignore[arg-type]
