"""Train / validation / test splits; the test part is kept apart for one final evaluation.

Every split kind is a registry entry with its own typed config, tagged by `kind`:

- `stratified` / `random`: shuffled holdout (class proportions kept by `stratified`);
- `kfold`: a sealed test holdout, the rest in k folds; fold i validates on part i;
- `chronological`: ordered by time: train, then val, then test, with an optional
  gap of samples dropped between them (`shuffle` draws train and val at random from the past:
  the common mistake, kept to show its cost);
- `group`: whole regime bins held out (a model must extrapolate to unseen conditions);
- `regime`: holdout stratified by regime bins (every regime in every split).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from lightning_modules.config import Config
from lightning_modules.data.datasets import ArrayDataset
from lightning_modules.registry import Registry


class _Fractions(Config):
    val: float = Field(0.15, gt=0.0, lt=1.0)
    test: float = Field(0.15, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> Any:
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be < 1 (given {self.val} + {self.test})")
        return self


class SplitConfig(_Fractions):
    """Shuffled holdout of `val` and `test` fractions (`stratified` keeps class proportions)."""

    kind: Literal["stratified", "random"] = "stratified"


class KFoldConfig(Config):
    """A sealed `test` holdout; the rest in `folds` folds (stratified by class where possible)."""

    kind: Literal["kfold"] = "kfold"
    folds: int = Field(5, ge=2, le=20, description="k: models trained per trial, one per fold")
    test: float = Field(0.15, gt=0.0, lt=1.0)


class ChronologicalConfig(_Fractions):
    """Oldest samples train, then val, then test; `gap` samples dropped at each boundary."""

    kind: Literal["chronological"] = "chronological"
    gap: int = Field(0, ge=0, description="samples dropped between train and val and between val and test")
    shuffle: bool = Field(
        False,
        description="draw train and val at random from the past before the test span (the common "
        "mistake on a time series, kept to show what it costs); test stays the future",
    )


class GroupConfig(_Fractions):
    """Whole bins of the regime variable `column` held out for val and test."""

    kind: Literal["group"] = "group"
    column: str = Field(description="a regime column of the dataset")
    bins: int = Field(10, ge=3, le=100, description="groups (equal-count bins of `column`)")


class RegimeSplitConfig(_Fractions):
    """Shuffled holdout stratified by bins of the regime variable `column`."""

    kind: Literal["regime"] = "regime"
    column: str = Field(description="a regime column of the dataset")
    bins: int = Field(4, ge=2, le=50, description="strata (equal-count bins of `column`)")


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class SplitEntry:
    config: type[Config]
    split: Callable[[ArrayDataset, Any, int, int], SplitIndices]  # (data, config, seed, fold)


SPLITS: Registry[SplitEntry] = Registry("split", tag="kind")


def split_configs() -> list[type[Config]]:
    """Each split config class once (`stratified` and `random` share one)."""
    return list(dict.fromkeys(SPLITS.get(name).config for name in SPLITS.names()))


def _labels(data: ArrayDataset) -> np.ndarray | None:
    """One class per sample when there is one (not for regression or per-step targets)."""
    return data.y if data.task == "classification" and not data.per_step else None


def _holdout(n: int, val: float, test: float, seed: int, strata: np.ndarray | None) -> SplitIndices:
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    rest, test_idx = train_test_split(idx, test_size=test, random_state=seed, stratify=strata)
    rest_strata = None if strata is None else strata[rest]
    train, val_idx = train_test_split(rest, test_size=val / (1.0 - test), random_state=seed, stratify=rest_strata)
    return SplitIndices(np.sort(train), np.sort(val_idx), np.sort(test_idx))


def stratified_split(data: ArrayDataset, cfg: SplitConfig, seed: int, fold: int = 0) -> SplitIndices:
    """Holdout that keeps class proportions equal across train, val and test (plain shuffled
    holdout when there is no one class per sample: regression, per-step labels)."""
    strata = _labels(data) if cfg.kind == "stratified" else None
    return _holdout(len(data.y), cfg.val, cfg.test, seed, strata)


def kfold_split(data: ArrayDataset, cfg: KFoldConfig, seed: int, fold: int = 0) -> SplitIndices:
    """Fold `fold` of k: the test holdout is the same for every fold."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    if not 0 <= fold < cfg.folds:
        raise ValueError(f"fold must be in [0, {cfg.folds}), given {fold}")
    labels = _labels(data)
    idx = np.arange(len(data.y))
    rest, test = train_test_split(idx, test_size=cfg.test, random_state=seed, stratify=labels)
    rest = np.sort(rest)
    if labels is not None and _every_class_fills(labels[rest], cfg.folds):
        splitter: Any = StratifiedKFold(cfg.folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(cfg.folds, shuffle=True, random_state=seed)
    train, val = list(splitter.split(rest, labels[rest] if labels is not None else None))[fold]
    return SplitIndices(rest[train], rest[val], np.sort(test))


def _every_class_fills(labels: np.ndarray, folds: int) -> bool:
    counts = np.bincount(labels)
    return bool(counts[counts > 0].min() >= folds)


def chronological_split(data: ArrayDataset, cfg: ChronologicalConfig, seed: int, fold: int = 0) -> SplitIndices:
    """By `data.time` (else sample order): [train][gap][val][gap][test]; with `shuffle`,
    [train and val at random][gap][test]."""
    order = np.argsort(data.time, kind="stable") if data.time is not None else np.arange(len(data.y))
    n = len(order)
    n_test, n_val = max(1, round(cfg.test * n)), max(1, round(cfg.val * n))
    n_train = n - n_test - n_val - 2 * cfg.gap
    if n_train < 1:
        raise ValueError(f"chronological split: gap {cfg.gap} leaves no training sample of {n}")
    if cfg.shuffle:
        # The same training-set size as unshuffled: only the val/train boundary moves into time.
        past = np.random.default_rng(seed).permutation(order[: n_train + n_val + cfg.gap])
        return SplitIndices(np.sort(past[n_val : n_val + n_train]), np.sort(past[:n_val]), order[n - n_test :])
    val_start = n_train + cfg.gap
    return SplitIndices(
        order[:n_train], order[val_start : val_start + n_val], order[n - n_test :]
    )


def regime_bins(data: ArrayDataset, column: str, bins: int) -> np.ndarray:
    """Equal-count bin index (0..bins-1) of each sample's regime value."""
    from lightning_modules.data.regimes import RegimeBins

    if column not in data.regimes:
        raise ValueError(f"the dataset has no regime column {column!r}; it has: {', '.join(data.regimes) or 'none'}")
    values = data.regimes[column]
    return RegimeBins(bins, "quantile").fit(values).transform(values)


def group_split(data: ArrayDataset, cfg: GroupConfig, seed: int, fold: int = 0) -> SplitIndices:
    """Regime bins in a seeded random order: test takes whole bins until it holds `test` of the
    samples, then val likewise; train keeps the rest. No bin is shared between splits."""
    groups = regime_bins(data, cfg.column, cfg.bins)
    order = np.random.default_rng(seed).permutation(np.unique(groups))
    cumulative = np.cumsum(np.bincount(groups)[order])
    n_test = int(np.searchsorted(cumulative, cfg.test * len(groups))) + 1
    n_val = int(np.searchsorted(cumulative, cumulative[n_test - 1] + cfg.val * len(groups))) + 1 - n_test
    if n_test + n_val >= len(order):
        raise ValueError(f"group split: {cfg.bins} bins leave none for training after val and test; use more bins")
    test, val = order[:n_test], order[n_test : n_test + n_val]
    return SplitIndices(
        np.flatnonzero(~np.isin(groups, order[: n_test + n_val])),
        np.flatnonzero(np.isin(groups, val)),
        np.flatnonzero(np.isin(groups, test)),
    )


def regime_split(data: ArrayDataset, cfg: RegimeSplitConfig, seed: int, fold: int = 0) -> SplitIndices:
    """Shuffled holdout with each regime bin in train, val and test in proportion."""
    return _holdout(len(data.y), cfg.val, cfg.test, seed, regime_bins(data, cfg.column, cfg.bins))


for _name, _config, _split in (
    ("stratified", SplitConfig, stratified_split),
    ("random", SplitConfig, stratified_split),
    ("kfold", KFoldConfig, kfold_split),
    ("chronological", ChronologicalConfig, chronological_split),
    ("group", GroupConfig, group_split),
    ("regime", RegimeSplitConfig, regime_split),
):
    SPLITS.register(_name)(SplitEntry(_config, _split))


def split_dataset(data: ArrayDataset, cfg: Config, seed: int, fold: int = 0) -> SplitIndices:
    """The split's indices; for `kfold`, those of fold `fold` (the others ignore it)."""
    return SPLITS.get(cfg.kind).split(data, cfg, seed, fold)  # type: ignore[attr-defined]


def split_config(split: str | dict[str, Any] | Config) -> Config:
    """The typed config of a split given by kind (`"chronological"`), mapping or config."""
    if isinstance(split, Config):
        return split
    raw = {"kind": split} if isinstance(split, str) else dict(split)
    return SPLITS.get(raw.get("kind", "stratified")).config.model_validate(raw)
