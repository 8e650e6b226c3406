"""Synthetic data generated from the seed alone, so a study gets the same samples in every trial:
sequence tasks that need memory over `length` time steps, and 1-D regression from a known function.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from lightning_modules.config import Config
from lightning_modules.data.datasets import DATASETS, ArrayDataset, DatasetEntry


class AddingConfig(Config):
    """The adding problem: `num_samples` sequences of `length` steps."""

    name: Literal["adding"] = "adding"
    length: int = Field(50, ge=2, description="time steps per sequence")
    num_samples: int = Field(2000, ge=10)


def adding_problem(cfg: AddingConfig, seed: int = 0) -> ArrayDataset:
    """Hochreiter & Schmidhuber (1997), in the form of Le et al. (2015).

    Channel 0 holds values drawn uniformly from [0, 1]; channel 1 marks two of them, one in each
    half of the sequence. The target is the sum of the two marked values, so a model must keep
    the first one in memory for about `length / 2` steps. Predicting the mean (1.0) gives an MSE
    of 1/6 ~ 0.167: a loss clearly below that means the model remembers.
    """
    rng = np.random.default_rng(seed)
    n, steps = cfg.num_samples, cfg.length
    values = rng.uniform(0.0, 1.0, (n, steps)).astype(np.float32)
    first = rng.integers(0, steps // 2, n)
    second = rng.integers(steps // 2, steps, n)
    markers = np.zeros((n, steps), np.float32)
    markers[np.arange(n), first] = 1.0
    markers[np.arange(n), second] = 1.0
    return ArrayDataset(
        x=np.stack([values, markers], axis=-1),
        y=(values * markers).sum(axis=1).astype(np.float32),
        task="regression",
        kind="sequence",
    )


class CopyConfig(Config):
    """The copy (memory) task: recall `symbols` symbols after a delay, in sequences of `length` steps."""

    name: Literal["copy"] = "copy"
    length: int = Field(30, ge=3, description="time steps per sequence, the delay included")
    symbols: int = Field(5, ge=1, description="symbols to remember")
    alphabet: int = Field(8, ge=2, description="distinct symbols")
    num_samples: int = Field(2000, ge=10)

    @model_validator(mode="after")
    def _room_for_recall(self) -> CopyConfig:
        if self.length < 2 * self.symbols + 1:
            raise ValueError(
                f"length ({self.length}) must be >= 2 * symbols + 1 ({2 * self.symbols + 1}): "
                "the symbols, a delimiter and the recall steps"
            )
        return self


def copy_task(cfg: CopyConfig, seed: int = 0) -> ArrayDataset:
    """Arjovsky et al. (2016) style copy-memory task, sequence-to-sequence classification.

    Input (one-hot over `alphabet + 2` channels: blank, the symbols 1..alphabet, a delimiter):
    `symbols` random symbols, blanks, a delimiter `symbols + 1` steps before the end, blanks.
    Target per step: blank (class 0), except on the last `symbols` steps, which must repeat the
    symbols seen at the start. Always answering blank scores 1 - symbols / length accuracy.
    """
    rng = np.random.default_rng(seed)
    n, steps, k = cfg.num_samples, cfg.length, cfg.symbols
    shown = rng.integers(1, cfg.alphabet + 1, (n, k))
    tokens = np.zeros((n, steps), np.int64)
    tokens[:, :k] = shown
    tokens[:, steps - k - 1] = cfg.alphabet + 1
    targets = np.zeros((n, steps), np.int64)
    targets[:, steps - k :] = shown
    return ArrayDataset(
        x=np.eye(cfg.alphabet + 2, dtype=np.float32)[tokens],
        y=targets,
        task="classification",
        kind="sequence",
        num_classes=cfg.alphabet + 1,
    )


DATASETS.register("adding")(DatasetEntry(AddingConfig, adding_problem, kind="sequence"))
DATASETS.register("copy")(DatasetEntry(CopyConfig, copy_task, kind="sequence"))


# --- 1-D regression with a known true function ---------------------------------------------

TRUE_FUNCTIONS = {
    "sin": lambda x: np.sin(np.pi * x),
    "cubic": lambda x: x**3 - 0.5 * x,
    "runge": lambda x: 1.0 / (1.0 + 25.0 * x**2),
    "step": lambda x: np.where(x < 0.0, -0.5, 0.5),
}


class PolyConfig(Config):
    """`num_samples` points x ~ U[-1, 1] with y = f(x) + noise, f a known function."""

    name: Literal["poly"] = "poly"
    function: Literal[tuple(TRUE_FUNCTIONS)] = "sin"  # type: ignore[valid-type]
    num_samples: int = Field(200, ge=10)
    noise: float = Field(0.1, ge=0.0, description="standard deviation of the Gaussian noise on y")


def true_function(cfg: PolyConfig, x: np.ndarray) -> np.ndarray:
    """The noise-free target: what a perfect model would predict (bias-variance studies)."""
    return TRUE_FUNCTIONS[cfg.function](x)


def poly_regression(cfg: PolyConfig, seed: int = 0) -> ArrayDataset:
    """x (n, 1) float32, y (n,) float32; regime column `x`, so that errors can be read per region
    (an underfit model misses the ends, an overfit one wiggles between samples)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, cfg.num_samples)
    y = true_function(cfg, x) + rng.normal(0.0, cfg.noise, cfg.num_samples)
    return ArrayDataset(
        x=x[:, None].astype(np.float32), y=y.astype(np.float32), task="regression", regimes={"x": x}
    )


DATASETS.register("poly")(DatasetEntry(PolyConfig, poly_regression, kind="tabular", regimes=("x",)))
