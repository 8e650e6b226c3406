"""Preprocessing registry: scikit-learn transformers, always fitted on the train split only, per channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lightning_modules.registry import Registry

PREPROCESSORS: Registry[Callable[[], Any]] = Registry("preprocessing step")


@PREPROCESSORS.register("standardize")
def standardize() -> Any:
    """Zero mean, unit variance per feature (per channel for sequences and images)."""
    from sklearn.preprocessing import StandardScaler

    return StandardScaler()


@PREPROCESSORS.register("minmax")
def minmax() -> Any:
    """Scale each feature (channel) to [0, 1]."""
    from sklearn.preprocessing import MinMaxScaler

    return MinMaxScaler()


def fit_transform_splits(
    steps: list[str], train: np.ndarray, others: list[np.ndarray], channel_axis: int = -1
) -> tuple[np.ndarray, list[np.ndarray], list[Any]]:
    """Fit each step on `train` alone, then apply it to train and to every other split.

    Arrays keep their shape. Each step sees one column per channel (`channel_axis`), with the
    other axes pooled into rows: per feature for tabular data, per channel over all time steps
    of a sequence or all pixels of an image.
    """
    fitted = []
    for name in steps:
        step = PREPROCESSORS.get(name)()
        train = _per_channel(step.fit_transform, train, channel_axis)
        others = [_per_channel(step.transform, o, channel_axis) for o in others]
        fitted.append(step)
    return train, others, fitted


def _per_channel(transform: Callable[[np.ndarray], np.ndarray], x: np.ndarray, channel_axis: int) -> np.ndarray:
    """Apply a (rows, columns) transform to `x` with its channels as the columns."""
    moved = np.moveaxis(x, channel_axis, -1)
    table = moved.reshape(-1, moved.shape[-1])
    out = np.asarray(transform(table), dtype=np.float32).reshape(moved.shape)
    return np.ascontiguousarray(np.moveaxis(out, -1, channel_axis))
