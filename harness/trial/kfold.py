"""k-fold cross-validation inside one trial: one model per fold, trained in lockstep epoch by epoch.

Each epoch every fold trains one epoch (its own Trainer, restored from the fold's checkpoint, so
optimizer and schedule state carry over exactly as in one uninterrupted fit); the trial then
reports the mean over folds of every metric (the search objective) and, for the overall train
and val metrics, their standard deviation over folds (`val/loss_std`) and each fold's value
(`val/loss/fold_2`). The sealed test split is the same for all folds; `evaluate_folds` scores
every fold's model on it and reports the mean and std.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import torch

from harness.study import StudySpec
from harness.trial.build import build, threads
from lightning_modules.models import SupervisedModule
from lightning_modules.regularizers import EarlyStopping
from lightning_modules.training import (
    EpochReporter,
    EpochSink,
    SpecOnRestore,
    make_trainer,
    quiet_lightning,
    regime_metrics,
)
from lightning_modules.training.callbacks import check_finite

FOLD_FILE = "fold-{}.ckpt"


def fold_seed(seed: int, fold: int) -> int:
    """Fold 0 keeps the study seed; the others get their own initialisation and batch order."""
    return (seed + 7919 * fold) % (2**63)


def aggregate(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean over folds of every numeric metric; std over folds and per-fold values of the overall
    train/val metrics (`split/name` keys)."""
    out: dict[str, float] = {}
    for key, value in rows[0].items():
        if key == "epoch" or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        values = np.array([float(row[key]) for row in rows if key in row])
        out[key] = float(values.mean())
        if key.count("/") == 1 and key.split("/")[0] in ("train", "val", "test"):
            out[f"{key}_std"] = float(values.std())
            if key.startswith("val/"):
                out.update({f"{key}/fold_{i}": float(v) for i, v in enumerate(values)})
    return out


class FoldCheckpoints:
    """Handed to the epoch sink in place of a Trainer: `save_checkpoint(path)` writes every fold's
    checkpoint beside `path` and, at `path`, the index a resumed trial reads."""

    def __init__(self, files: list[Path], modules: list[SupervisedModule], epoch: int, stopper: Any) -> None:
        self.files, self.modules, self.epoch, self.stopper = files, modules, epoch, stopper
        self.lightning_module = modules[0]  # the weight histogram shows fold 0's model
        self.strategy = SimpleNamespace(root_device=modules[0].device)

    def save_checkpoint(self, path: str | Path) -> None:
        path = Path(path)
        for i, file in enumerate(self.files):
            shutil.copyfile(file, path.with_name(FOLD_FILE.format(i)))
        stopping = self.stopper.state_dict() if self.stopper is not None else None
        torch.save({"folds": len(self.files), "epoch": self.epoch, "early_stopping": stopping}, path)


def _early_stop(stopper: EarlyStopping, metrics: dict[str, float], epoch: int) -> str | None:
    """Early stopping on the mean over folds, by the same rule as a single model's."""
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=epoch - 1, should_stop=False)
    module = SimpleNamespace(epoch_metrics=lambda splits: metrics)
    stopper.on_validation_end(trainer, module)  # type: ignore[arg-type]
    return stopper.reason


def fit_folds(
    spec: StudySpec,
    sink: EpochSink,
    *,
    resume_from: Path | None = None,
    stop_after: int | None = None,
    accelerator: str = "cpu",
) -> list[SupervisedModule]:
    """Train one model per fold of `spec.data.split`, calling `sink(metrics, checkpoints)` after
    every epoch with the fold means; returns the fold models."""
    quiet_lightning()
    torch.set_num_threads(threads(spec))
    k = spec.data.split.folds  # type: ignore[attr-defined]
    folds = []
    for i in range(k):
        L.seed_everything(fold_seed(spec.seed, i), verbose=False)
        folds.append(build(spec, fold=i))
    stopper = EarlyStopping(spec.train.early_stopping) if spec.train.early_stopping.patience is not None else None
    files: list[Path | None] = [None] * k
    start = 0
    if resume_from is not None:
        index = torch.load(resume_from, map_location="cpu", weights_only=False)
        files = [resume_from.with_name(FOLD_FILE.format(i)) for i in range(k)]
        start = int(index["epoch"])
        if stopper is not None and index.get("early_stopping"):
            stopper.load_state_dict(index["early_stopping"])
    work = Path(tempfile.mkdtemp(prefix="harness-folds-"))
    try:
        for epoch in range(start, spec.train.max_epochs):
            rows: list[dict[str, Any]] = []
            for i, (dm, module) in enumerate(folds):
                callbacks: list[L.Callback] = [EpochReporter(fold_seed(spec.seed, i), lambda m, t, rows=rows: rows.append(m))]
                if resume_from is not None and epoch == start:
                    callbacks.append(SpecOnRestore())  # PBT may have changed the optimizer's settings
                trainer = make_trainer(spec.train.max_epochs, callbacks, accelerator)
                trainer.fit_loop.max_epochs = epoch + 1
                trainer.fit(module, datamodule=dm, ckpt_path=str(files[i]) if files[i] else None)
                files[i] = work / FOLD_FILE.format(i)
                trainer.save_checkpoint(files[i])
            metrics: dict[str, Any] = {"epoch": epoch + 1, **aggregate(rows)}
            check_finite(metrics, epoch + 1, " (mean over folds)")
            reason = _early_stop(stopper, metrics, epoch + 1) if stopper is not None else None
            if reason:
                metrics["stop_reason"] = reason
            sink(metrics, FoldCheckpoints(files, [m for _, m in folds], epoch + 1, stopper))  # type: ignore[arg-type]
            if reason or (stop_after is not None and epoch + 1 >= stop_after):
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [module for _, module in folds]


def evaluate_folds(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    """Every fold's model on the sealed test split (preprocessed as its fold's train split was):
    the mean and std over folds of each test metric, per-regime scores included."""
    torch.set_num_threads(threads(spec))
    rows = []
    for i in range(spec.data.split.folds):  # type: ignore[attr-defined]
        dm, module = build(spec, fold=i)
        state = torch.load(checkpoint.with_name(FOLD_FILE.format(i)), map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        rows.append({**module.evaluate(dm.test_dataloader()), **regime_metrics(module, dm, "test")})
    return aggregate(rows)
