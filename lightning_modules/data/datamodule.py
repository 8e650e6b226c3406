"""A LightningDataModule over in-memory arrays, with fast tensor batch iterators."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from lightning_modules.config import Config
from lightning_modules.data.datasets import DATASETS, ArrayDataset, DataShape, dataset_config, load_dataset
from lightning_modules.data.preprocessing import Prepared, SplitArrays, StepConfig, prepare_splits
from lightning_modules.data.splits import split_config, split_dataset

Batch = tuple[torch.Tensor, torch.Tensor]


class TensorBatches:
    """Yields (x, y) mini-batches by slicing whole tensors.

    A DataLoader over a TensorDataset indexes and collates sample by sample, which costs
    more than the forward/backward pass of a small model; slicing a permuted tensor does not.
    Shuffling draws from torch's global generator so that seeding it fixes the order.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool) -> None:
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n)
            x, y = self.x[order], self.y[order]
        else:
            x, y = self.x, self.y
        for start in range(0, n, self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]


class StepGroup(list[Batch]):
    """Several (x, y) mini-batches that Lightning handles as one batch.

    Lightning's per-batch work (hooks, device transfer, progress tracking) costs about as much
    as an optimizer step of a small model; `SupervisedModule` takes one step per mini-batch of
    a group, so that work is paid once per group. A list, so Lightning moves its tensors.
    """


def minibatches(batch: Batch | StepGroup) -> list[Batch] | tuple[Batch]:
    """The (x, y) mini-batches in a Lightning batch: those of a StepGroup, or the batch itself."""
    return batch if isinstance(batch, StepGroup) else (batch,)


class GroupedBatches:
    """Yields the mini-batches of `batches` as StepGroups of `steps` (all of an epoch's if None)."""

    def __init__(self, batches: TensorBatches, steps: int | None = None) -> None:
        self.batches, self.steps = batches, steps

    def __len__(self) -> int:
        n = len(self.batches)
        return math.ceil(n / self.steps) if self.steps else min(n, 1)

    def __iter__(self) -> Iterator[StepGroup]:
        # Lazy like TensorBatches: the shuffle is drawn on the first `next`, after epoch seeding.
        batches = iter(self.batches)
        size = self.steps or max(1, len(self.batches))
        while group := StepGroup(itertools.islice(batches, size)):
            yield group


def _load(dataset: Config, seed: int) -> ArrayDataset:
    return _load_cached(dataset.name, dataset.model_dump_json(), seed)  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, config_json: str, seed: int) -> ArrayDataset:
    # Datasets are deterministic in (config, seed), and reading one (digits: parsing a CSV) can
    # take longer than a short trial's training; trials sharing a process share the arrays.
    data = load_dataset(DATASETS.get(name).config.model_validate_json(config_json), seed)
    for array in (data.x, data.y, *data.regimes.values()):
        array.flags.writeable = False
    return data


class TensorDataModule(L.LightningDataModule):
    """Train, val and test loaders that slice a subclass's `split_tensors(name)` into batches of
    `batch_size` (StepGroups of `steps_per_batch`, when not 1)."""

    batch_size: int
    steps_per_batch: int | None

    def split_tensors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _batches(self, name: str, shuffle: bool) -> TensorBatches | GroupedBatches:
        x, y = self.split_tensors(name)
        batches = TensorBatches(x, y, self.batch_size, shuffle)
        return batches if self.steps_per_batch == 1 else GroupedBatches(batches, self.steps_per_batch)

    def train_dataloader(self) -> TensorBatches | GroupedBatches:
        return self._batches("train", shuffle=True)

    def val_dataloader(self) -> TensorBatches | GroupedBatches:
        return self._batches("val", shuffle=False)

    def test_dataloader(self) -> TensorBatches | GroupedBatches:
        return self._batches("test", shuffle=False)


class ArrayDataModule(TensorDataModule):
    """Loads a registered dataset, splits it, and fits preprocessing on train only.

    `dataset` is a dataset config, its mapping, or the name of one whose defaults suit; `split`
    and each preprocessing step likewise (a config, a mapping or a name). Preprocessing is fitted
    on the train split alone, or on train and val with `leak` (a teaching switch: see docs/data.md).
    `fold` picks the fold of a k-fold split.

    The test split is built but only `test_dataloader` serves it: training and validation
    never see it. `steps_per_batch` > 1 (or None: a whole epoch) serves StepGroups of that many
    mini-batches instead of single (x, y) batches, for modules that step per mini-batch.
    """

    def __init__(
        self,
        dataset: Config | dict[str, Any] | str,
        split: Config | dict[str, Any] | str,
        preprocessing: Sequence[str | dict[str, Any] | StepConfig],
        batch_size: int,
        seed: int = 0,
        steps_per_batch: int | None = 1,
        leak: bool = False,
        fold: int = 0,
    ) -> None:
        super().__init__()
        if steps_per_batch is not None and steps_per_batch < 1:
            raise ValueError(f"steps_per_batch must be >= 1 or None (given {steps_per_batch})")
        self.dataset, self.split_cfg = dataset_config(dataset), split_config(split)
        self.preprocessing, self.batch_size, self.seed = list(preprocessing), batch_size, seed
        self.steps_per_batch, self.leak, self.fold = steps_per_batch, leak, fold
        self.data: ArrayDataset = _load(self.dataset, seed)
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.prepared: Prepared | None = None

    @property
    def task(self) -> str:
        return self.data.task

    @property
    def shape(self) -> DataShape:
        """What a network builder needs: data kind, one sample's input shape after preprocessing
        (signal and feature steps may change it), outputs."""
        x = self.split_tensors("train")[0]
        return DataShape(self.data.kind, tuple(x.shape[1:]), self.data.num_outputs, self.data.per_step)

    @property
    def num_features(self) -> int:
        return self.shape.num_features

    @property
    def num_outputs(self) -> int:
        return self.data.num_outputs

    @property
    def num_train(self) -> int:
        return len(self.split_tensors("train")[0])

    @property
    def steps_per_epoch(self) -> int:
        """Training mini-batches (optimizer steps) per epoch, however they are grouped."""
        return math.ceil(self.num_train / self.batch_size)

    @property
    def preprocessing_stats(self) -> dict[str, float]:
        """Outlier counts per step and split (`data/step<i>_<name>/flagged_<split>`, `.../dropped_train`)
        and the train samples kept (`data/train_samples`)."""
        self.setup()
        assert self.prepared is not None
        return dict(self.prepared.stats)

    def regime_groups(self, split: str) -> dict[str, np.ndarray]:
        """Regime column -> bin index of each sample of `split` (empty without regimes)."""
        self.setup()
        assert self.prepared is not None
        return self.prepared.groups[split]

    @property
    def regime_bin_names(self) -> dict[str, list[str]]:
        self.setup()
        assert self.prepared is not None
        return self.prepared.bin_names

    def setup(self, stage: str | None = None) -> None:
        if self._tensors is not None:
            return
        idx = split_dataset(self.data, self.split_cfg, self.seed, self.fold)
        y = self.data.y if self.task == "classification" else self.data.y.astype(np.float32)
        parts = {
            name: SplitArrays(self.data.x[rows], y[rows], {k: v[rows] for k, v in self.data.regimes.items()})
            for name, rows in (("train", idx.train), ("val", idx.val), ("test", idx.test))
        }
        self.prepared = prepare_splits(
            self.preprocessing, parts, self.data.kind, leak=self.leak, where=lambda i: f"data.preprocessing.{i}"
        )
        self._tensors = {
            name: (torch.from_numpy(np.ascontiguousarray(part.x, np.float32)), torch.from_numpy(part.y))
            for name, part in self.prepared.splits.items()
        }

    def transform_inputs(self, x: np.ndarray) -> torch.Tensor:
        """New inputs (not from any split) as the fitted preprocessing turns the test split: for
        predictions at chosen points. Steps that would drop or relabel rows are refused."""
        self.setup()
        assert self.prepared is not None
        part = SplitArrays(np.asarray(x, np.float32), np.zeros(len(x), np.float32))
        for step in self.prepared.fitted:
            if step.bin_names():
                continue  # regime labelling leaves the features as they are
            part = step.apply("test", part)
            if len(part.x) != len(x):
                raise ValueError(f"{type(step).__name__} drops rows; inputs at chosen points must all be kept")
        return torch.from_numpy(np.ascontiguousarray(part.x, np.float32))

    def split_tensors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        self.setup()
        assert self._tensors is not None
        return self._tensors[name]



class SubsetDataModule(TensorDataModule):
    """Some rows of each split of a set-up `ArrayDataModule`, preprocessed as the parent's
    (fitted on its whole train split): for a model trained on one part of the data, such as a
    specialist for one operating regime."""

    def __init__(self, parent: ArrayDataModule, rows: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.parent, self.batch_size, self.steps_per_batch = parent, parent.batch_size, parent.steps_per_batch
        self._tensors = {}
        for split in ("train", "val", "test"):
            x, y = parent.split_tensors(split)
            index = torch.from_numpy(np.asarray(rows.get(split, np.arange(0)), np.int64))
            self._tensors[split] = (x[index], y[index])

    def split_tensors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._tensors[name]

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self._tensors["train"][0]) / self.batch_size))
