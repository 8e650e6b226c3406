"""Preprocessing: a registry of typed step configs, each building a step, and the pipeline that
fits every step on the train split alone and applies it to every split.

One contract for every step (`Step`): it learns from the data it is fitted on (`fit_split`),
reports what it found on each split before changing anything (`statistics`), and then turns
each split into its output (`apply`). Feature transforms only override scikit-learn's `fit`
and `transform`; outlier detectors also count and drop; regime binning labels samples
instead of changing features. The pipeline treats them all alike.

Steps take arrays in their natural shape ((n, features), (n, time, channels) or (n, channels,
height, width)) and return arrays of the same kind; signal steps work along the time axis of
sequences. Fitted steps (scalers, outlier thresholds, regime bins) learn from the train split
only and are then applied unchanged to val and test; `leak=True` (a teaching switch) fits them on
train and val together, the validation data leaking into the pipeline; the test split is never
part of a fit. The other modules of this package register the signal, outlier, feature and
regime steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from lightning_modules.config import Config
from lightning_modules.data.datasets import DATA_KINDS, DataKind
from lightning_modules.registry import Registry


@dataclass
class SplitArrays:
    """One split's features, targets, regime columns and regime bin labels, kept row-aligned."""

    x: np.ndarray
    y: np.ndarray
    regimes: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # regime column -> bin index per sample

    def take(self, rows: np.ndarray) -> SplitArrays:
        return SplitArrays(
            self.x[rows], self.y[rows], {k: v[rows] for k, v in self.regimes.items()},
            {k: v[rows] for k, v in self.groups.items()},
        )


class Step(BaseEstimator, TransformerMixin):
    """A preprocessing step over arrays in their natural shape; stateless unless it overrides
    `fit`. The pipeline calls `fit_split`, then `statistics`, then `apply` on each split."""

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> Step:
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit_split(self, data: SplitArrays) -> Step:
        """Learn from `data` (the train split; train and val under `leak`)."""
        return self.fit(data.x)

    def statistics(self, splits: dict[str, SplitArrays]) -> dict[str, float]:
        """What the fitted step finds in each split before it changes them (counts to log)."""
        return {}

    def apply(self, split: str, part: SplitArrays) -> SplitArrays:
        """Split `split` as this step outputs it; the default transforms the features."""
        return replace(part, x=self.transform(part.x))

    def bin_names(self) -> dict[str, list[str]]:
        """Regime column -> one name per bin, for a step that labels samples with regime bins."""
        return {}


class StepConfig(Config):
    """A preprocessing step's settings; `name` is its registry tag."""

    # The data kinds the step applies to; whether it learns from data (and so could leak).
    kinds: ClassVar[tuple[DataKind, ...]] = DATA_KINDS
    fitted: ClassVar[bool] = False

    def transformer(self, kind: DataKind) -> Step:
        raise NotImplementedError


@dataclass(frozen=True)
class StepEntry:
    config: type[StepConfig]


PREPROCESSORS: Registry[StepEntry] = Registry("preprocessing step", tag="name")


def register_step(config: type[StepConfig]) -> type[StepConfig]:
    """Class decorator: register a step config under its `name` tag."""
    PREPROCESSORS.register(config.model_fields["name"].default)(StepEntry(config))
    return config


def step_config(step: str | dict[str, Any] | StepConfig) -> StepConfig:
    """The typed config of a step given by name (`"standardize"`), mapping or config."""
    if isinstance(step, StepConfig):
        return step
    raw = {"name": step} if isinstance(step, str) else dict(step)
    return PREPROCESSORS.get(raw.get("name")).config.model_validate(raw)


def channels_last(x: np.ndarray, kind: DataKind) -> np.ndarray:
    """A view of `x` with its channels on the last axis (images keep them on axis 1)."""
    return np.moveaxis(x, 1, -1) if kind == "image" else x


def channels_back(x: np.ndarray, kind: DataKind) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, -1, 1) if kind == "image" else x)


# --- scalers ---------------------------------------------------------------------------------


class ChannelScaler(Step):
    """A scikit-learn scaler fitted per channel: per feature for tabular data, over all time steps
    of a sequence channel, over all pixels of an image channel."""

    def __init__(self, method: Literal["standardize", "minmax"] = "standardize", kind: DataKind = "tabular") -> None:
        self.method, self.kind = method, kind

    def _table(self, x: np.ndarray) -> np.ndarray:
        moved = channels_last(x, self.kind)
        return moved.reshape(-1, moved.shape[-1])

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> ChannelScaler:
        from sklearn.preprocessing import MinMaxScaler, StandardScaler

        self.scaler_ = StandardScaler() if self.method == "standardize" else MinMaxScaler()
        self.scaler_.fit(self._table(x))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        moved = channels_last(x, self.kind)
        out = self.scaler_.transform(moved.reshape(-1, moved.shape[-1])).reshape(moved.shape)
        return channels_back(out.astype(np.float32), self.kind)


@register_step
class StandardizeConfig(StepConfig):
    """Zero mean, unit variance per channel."""

    name: Literal["standardize"] = "standardize"
    fitted: ClassVar[bool] = True

    def transformer(self, kind: DataKind) -> Step:
        return ChannelScaler("standardize", kind)


@register_step
class MinMaxConfig(StepConfig):
    """Each channel scaled to [0, 1] over the train split."""

    name: Literal["minmax"] = "minmax"
    fitted: ClassVar[bool] = True

    def transformer(self, kind: DataKind) -> Step:
        return ChannelScaler("minmax", kind)


# --- the pipeline ----------------------------------------------------------------------------


class OutlierStep(Step):
    """Base of the outlier detectors: `outliers(x)` marks points; `action` clips them (to the
    detector's bound or local estimate), flags them (one extra channel: 1 where any channel of
    that point is an outlier) or, on the train split only, drops the samples that contain any."""

    action: str
    kind: DataKind

    def outliers(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def replacement(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.action == "drop":
            return x
        mask = self.outliers(x)
        if self.action == "clip":
            return np.where(mask, self.replacement(x), x).astype(np.float32)
        flag = channels_last(mask, self.kind).any(axis=-1, keepdims=True).astype(np.float32)
        return channels_back(np.concatenate([channels_last(x, self.kind), flag], axis=-1), self.kind)

    def _kept(self, x: np.ndarray) -> np.ndarray:
        mask = self.outliers(x)
        return ~mask.reshape(len(mask), -1).any(axis=1)

    def statistics(self, splits: dict[str, SplitArrays]) -> dict[str, float]:
        stats = {f"flagged_{name}": float(self.outliers(part.x).sum()) for name, part in splits.items()}
        if self.action == "drop":
            stats["dropped_train"] = float((~self._kept(splits["train"].x)).sum())
        return stats

    def apply(self, split: str, part: SplitArrays) -> SplitArrays:
        if self.action == "drop" and split == "train":  # val and test keep every sample
            keep = self._kept(part.x)
            if not keep.any():
                raise ValueError("dropping outliers would leave no training sample")
            return part.take(np.flatnonzero(keep))
        return super().apply(split, part)


@dataclass
class Prepared:
    """The transformed splits, each split's regime groups, the fitted steps and their statistics."""

    splits: dict[str, SplitArrays]
    groups: dict[str, dict[str, np.ndarray]]  # split -> regime column -> bin index per sample
    bin_names: dict[str, list[str]]  # regime column -> one name per bin
    fitted: list[Step]
    stats: dict[str, float]


def prepare_splits(
    steps: Sequence[str | dict[str, Any] | StepConfig],
    splits: dict[str, SplitArrays],
    kind: DataKind,
    leak: bool = False,
    default_bins: int = 3,
    where: Callable[[int], str] = lambda i: f"preprocessing step {i}",
) -> Prepared:
    """Apply `steps` in order to every split of `splits` (which must hold `train`).

    Each step learns from the train split alone (from train and val when `leak`), reports its
    statistics as `data/step<i>_<name>/<key>`, then outputs every split. Every regime column no
    step bins gets `default_bins` quantile bins fitted on train. `where(i)` names step i in
    error messages.
    """
    splits = dict(splits)
    per_step = splits["train"].y.ndim == 2
    fitted: list[Step] = []
    stats: dict[str, float] = {}
    names: dict[str, list[str]] = {}
    configs = [step_config(raw) for raw in steps]
    binned = {getattr(cfg, "column", None) for cfg in configs}
    # Regime columns no step bins: labelled by the default binning, after the listed steps.
    configs += [
        PREPROCESSORS.get("regime_bins").config(column=column, bins=default_bins)  # type: ignore[call-arg]
        for column in splits["train"].regimes
        if column not in binned
    ]
    for i, cfg in enumerate(configs):
        step = cfg.transformer(kind)
        length = splits["train"].x.shape[1]
        try:
            step.fit_split(_fit_data(splits, leak))
            tag = f"data/step{i}_{cfg.name}"  # type: ignore[attr-defined]
            stats.update({f"{tag}/{key}": value for key, value in step.statistics(splits).items()})
            splits = {name: step.apply(name, part) for name, part in splits.items()}
        except ValueError as exc:
            raise ValueError(f"{where(i)}: {exc}") from None
        if per_step and kind == "sequence" and splits["train"].x.shape[1] != length:
            raise ValueError(
                f"{where(i)} ({cfg.name}) changes the number of time steps ({length} -> "  # type: ignore[attr-defined]
                f"{splits['train'].x.shape[1]}), but the dataset has one target per time step"
            )
        names.update(step.bin_names())
        fitted.append(step)
    stats["data/train_samples"] = float(len(splits["train"].y))
    groups = {name: dict(part.groups) for name, part in splits.items()}
    return Prepared(splits, groups, names, fitted, stats)


def _fit_data(splits: dict[str, SplitArrays], leak: bool) -> SplitArrays:
    """What a step learns from: the train split; under `leak`, every split the search sees
    (all but `test`: the sealed test split stays out of every fit, so its score shows the cost)."""
    if not leak:
        return splits["train"]
    parts = [part for name, part in splits.items() if name != "test"]
    return SplitArrays(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        {k: np.concatenate([p.regimes[k] for p in parts]) for k in parts[0].regimes},
        {k: np.concatenate([p.groups[k] for p in parts]) for k in parts[0].groups},
    )
