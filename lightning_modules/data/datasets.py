"""Dataset registry: each entry loads arrays offline (bundled or generated data only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from lightning_modules.registry import Registry

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class ArrayDataset:
    """Features `x` (n, ...) float32 and targets `y` (int64 labels or float32 values)."""

    x: np.ndarray
    y: np.ndarray
    task: Task
    num_classes: int = 0  # 0 for regression

    @property
    def num_features(self) -> int:
        return int(np.prod(self.x.shape[1:]))

    @property
    def num_outputs(self) -> int:
        return self.num_classes if self.task == "classification" else 1


DATASETS: Registry[Callable[[int], ArrayDataset]] = Registry("dataset")


@DATASETS.register("digits")
def load_digits_dataset(seed: int = 0) -> ArrayDataset:
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 samples, 64 features, 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return ArrayDataset(
        x=bunch.data.astype(np.float32),
        y=bunch.target.astype(np.int64),
        task="classification",
        num_classes=10,
    )
