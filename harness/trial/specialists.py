"""A specialists trial: one global model on all the training data and one specialist per
operating regime bin, trained only on that regime's training samples (the seed's "train
specialized models per regime"). Every model sees the same preprocessing (fitted on the whole
train split) and the same epochs.

Per epoch the trial reports the global model's metrics as a training trial does (its
per-regime scores included: `val/loss/<column>_bin_<i>`), each specialist's score on its own
regime (`val/specialist/loss/<column>_bin_<i>`, acc or rmse beside it) and the specialists
together, each validation sample scored by its regime's specialist (`val/specialist/loss`).
The chosen trial's models are scored the same way on the sealed test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from harness.study import StudySpec
from harness.trial.build import build, threads
from harness.trial.kfold import FOLD_FILE
from harness.trial.members import Member, at_epoch, checkpoint_folder, fit_members, report_epochs
from lightning_modules.data import ArrayDataModule, SubsetDataModule, grouped_metrics
from lightning_modules.models import SupervisedModule, build_network
from lightning_modules.training import EpochSink, quiet_lightning, regime_metrics

PREFIX = "specialist/"


def _members(spec: StudySpec) -> tuple[ArrayDataModule, list[Member]]:
    """The global model's datamodule and every model: the global one first, then one
    specialist per regime bin of `spec.specialists.column`."""
    column = spec.specialists.column  # type: ignore[union-attr]
    L.seed_everything(spec.seed, verbose=False)
    dm, module = build(spec)
    members: list[Member] = [(dm, module, spec.seed)]
    for index in range(len(dm.regime_bin_names[column])):
        rows = {split: np.flatnonzero(dm.regime_groups(split)[column] == index) for split in ("train", "val", "test")}
        if len(rows["train"]) == 0:
            raise ValueError(f"regime bin {dm.regime_bin_names[column][index]} has no training sample to train a specialist on")
        subset = SubsetDataModule(dm, rows)
        L.seed_everything(spec.seed + index + 1, verbose=False)
        specialist = SupervisedModule(
            build_network(spec.model, dm.shape), task=dm.task,
            optimizer=spec.train.optimizer.for_batch_size(dm.batch_size), schedule=spec.train.schedule,
            max_epochs=spec.train.max_epochs, steps_per_epoch=subset.steps_per_epoch, log_metrics=False,
            regularization=spec.train.regularization, gradient_clip=spec.train.gradient_clip,
        )
        members.append((subset, specialist, spec.seed + index + 1))
    return dm, members


def specialist_scores(dm: ArrayDataModule, specialists: dict[int, SupervisedModule], column: str, split: str) -> dict[str, float]:
    """Specialists (by regime bin index) on their own regimes of `split`; with every bin's
    specialist given, also all of them together (each sample scored by its regime's specialist)."""
    x, y = dm.split_tensors(split)
    labels = dm.regime_groups(split)[column]
    names = dm.regime_bin_names[column]
    losses = np.full(len(y), np.nan)
    correct = np.full(len(y), np.nan) if dm.task == "classification" else None
    for index, module in specialists.items():
        rows = np.flatnonzero(labels == index)
        if len(rows) == 0:
            continue
        scored = module.sample_metrics(x[rows], y[rows])
        losses[rows] = scored["loss"].cpu().numpy()
        if correct is not None:
            correct[rows] = scored["correct"].cpu().numpy()
    scored_bins = {column: np.where(np.isin(labels, list(specialists)), labels, -1)}
    metrics = grouped_metrics(split, losses, correct, scored_bins, {column: names}, dm.task)
    if len(specialists) == len(names):
        metrics[f"{split}/loss"] = float(losses.mean())
        if correct is not None:
            metrics[f"{split}/acc"] = float(correct.mean())
        elif dm.task == "regression":
            metrics[f"{split}/rmse"] = float(np.sqrt(losses.mean()))
    return {f"{split}/{PREFIX}{k.split('/', 1)[1]}": v for k, v in metrics.items()}


def fit_specialists(
    spec: StudySpec, sink: EpochSink, *, resume_from: Path | None = None, stop_after: int | None = None,
    accelerator: str = "cpu",
) -> SupervisedModule:
    """Fit the global model and every specialist (`harness.trial.members`: an interrupted
    trial starts over); report per epoch the global metrics and the specialists' scores."""
    quiet_lightning()
    torch.set_num_threads(threads(spec))
    column = spec.specialists.column  # type: ignore[union-attr]
    dm, members = _members(spec)
    x, y = dm.split_tensors("val")
    labels = dm.regime_groups("val")[column]

    def probe(k: int) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:
        # Specialist k (bin k - 1): its own regime's scores and its per-sample results there.
        if k == 0:
            return {}, None
        rows = np.flatnonzero(labels == k - 1)
        scores = specialist_scores(dm, {k - 1: members[k][1]}, column, "val")
        return scores, (members[k][1].sample_metrics(x[rows], y[rows]) if len(rows) else None)

    with checkpoint_folder() as folder:
        histories, probed, files = fit_members(spec, members, folder, probe=probe, stop_after=stop_after, accelerator=accelerator)

        def combine(epoch: int) -> dict[str, Any]:
            metrics = {k: v for k, v in at_epoch(histories[0], epoch).items() if k != "epoch"}
            losses, hits = [], []
            for per_epoch in probed[1:]:
                scores, samples = at_epoch(per_epoch, epoch)
                metrics.update(scores)
                if samples is not None:
                    losses.append(samples["loss"])
                    if "correct" in samples:
                        hits.append(samples["correct"])
            if losses:
                metrics[f"val/{PREFIX}loss"] = float(torch.cat(losses).mean())
                if hits:
                    metrics[f"val/{PREFIX}acc"] = float(torch.cat(hits).mean())
            return metrics

        report_epochs(histories, files, [m for _, m, _ in members], sink, combine, " (global model)")
    return members[0][1]


def evaluate_specialists(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    """The global model and the specialists on the sealed test split."""
    torch.set_num_threads(threads(spec))
    dm, members = _members(spec)
    for i, (_, module, _) in enumerate(members):
        state = torch.load(checkpoint.with_name(FOLD_FILE.format(i)), map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        module.eval()
    model = members[0][1]
    metrics = {**model.evaluate(dm.test_dataloader()), **regime_metrics(model, dm, "test")}
    specialists = {i: module for i, (_, module, _) in enumerate(members[1:])}
    metrics.update(specialist_scores(dm, specialists, spec.specialists.column, "test"))  # type: ignore[union-attr]
    return metrics
