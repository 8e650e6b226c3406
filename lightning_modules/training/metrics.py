"""Scores beyond the module's own per-epoch metrics: per operating regime, and the counts that
preprocessing logged (outliers flagged and dropped)."""

from __future__ import annotations

import lightning as L

from lightning_modules.data import ArrayDataModule, grouped_metrics
from lightning_modules.models import SupervisedModule


def regime_metrics(module: SupervisedModule, dm: ArrayDataModule, split: str) -> dict[str, float]:
    """`<split>/loss/<column>_bin_<i>` and acc (classification) or rmse (regression) per regime bin;
    empty when the dataset has no regimes. One extra forward pass over the split, in eval mode."""
    groups = dm.regime_groups(split)
    if not groups:
        return {}
    x, y = dm.split_tensors(split)
    per_sample = {k: v.cpu().numpy() for k, v in module.sample_metrics(x, y).items()}
    return grouped_metrics(split, per_sample["loss"], per_sample.get("correct"), groups, dm.regime_bin_names, dm.task)


def data_metrics(trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
    """What an epoch report adds from the data: per-regime validation scores and, on the first
    epoch, the preprocessing counts when an outlier step made any."""
    dm = trainer.datamodule  # type: ignore[attr-defined]
    if not isinstance(dm, ArrayDataModule) or not isinstance(module, SupervisedModule):
        return {}
    metrics = regime_metrics(module, dm, "val")
    stats = dm.preprocessing_stats
    if trainer.current_epoch == 0 and len(stats) > 1:  # more than the train sample count
        metrics.update(stats)
    return metrics
