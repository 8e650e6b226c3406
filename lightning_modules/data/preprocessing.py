"""Preprocessing registry: scikit-learn transformers, always fitted on the train split only."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from lightning_modules.registry import Registry

PREPROCESSORS: Registry[Callable[[], Any]] = Registry("preprocessing step")


@PREPROCESSORS.register("standardize")
def standardize() -> Any:
    """Zero mean, unit variance per feature."""
    from sklearn.preprocessing import StandardScaler

    return StandardScaler()


@PREPROCESSORS.register("minmax")
def minmax() -> Any:
    """Scale each feature to [0, 1]."""
    from sklearn.preprocessing import MinMaxScaler

    return MinMaxScaler()


def fit_transform_splits(
    steps: list[str], train: np.ndarray, others: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray], list[Any]]:
    """Fit each step on `train` alone, then apply it to train and to every other split."""
    fitted = []
    for name in steps:
        step = PREPROCESSORS.get(name)()
        train = step.fit_transform(train).astype(np.float32)
        others = [step.transform(o).astype(np.float32) for o in others]
        fitted.append(step)
    return train, others, fitted
