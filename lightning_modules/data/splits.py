"""Train / validation / test splits; the test part is kept apart for one final evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
from pydantic import Field, model_validator

from lightning_modules.config import Config
from lightning_modules.data.datasets import ArrayDataset
from lightning_modules.registry import Registry


class SplitConfig(Config):
    """Fractions of the data held out for validation and for the sealed test set."""

    kind: Literal["stratified", "random"] = "stratified"
    val: float = Field(0.15, gt=0.0, lt=1.0)
    test: float = Field(0.15, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> "SplitConfig":
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be < 1 (given {self.val} + {self.test})")
        return self


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


SPLITS: Registry[Callable[[ArrayDataset, SplitConfig, int], SplitIndices]] = Registry("split")


def _holdout(data: ArrayDataset, cfg: SplitConfig, seed: int, stratify: bool) -> SplitIndices:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data.y))
    labels = data.y if stratify else None
    rest, test = train_test_split(idx, test_size=cfg.test, random_state=seed, stratify=labels)
    rest_labels = data.y[rest] if stratify else None
    train, val = train_test_split(
        rest, test_size=cfg.val / (1.0 - cfg.test), random_state=seed, stratify=rest_labels
    )
    return SplitIndices(np.sort(train), np.sort(val), np.sort(test))


@SPLITS.register("stratified")
def stratified_split(data: ArrayDataset, cfg: SplitConfig, seed: int) -> SplitIndices:
    """Holdout that keeps class proportions equal across train, val and test (plain shuffled
    holdout when there is no one class per sample: regression, per-step labels)."""
    return _holdout(data, cfg, seed, stratify=data.task == "classification" and not data.per_step)


@SPLITS.register("random")
def random_split(data: ArrayDataset, cfg: SplitConfig, seed: int) -> SplitIndices:
    """Plain shuffled holdout."""
    return _holdout(data, cfg, seed, stratify=False)


def split_dataset(data: ArrayDataset, cfg: SplitConfig, seed: int) -> SplitIndices:
    return SPLITS.get(cfg.kind)(data, cfg, seed)
