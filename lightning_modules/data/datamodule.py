"""A LightningDataModule over in-memory arrays, with a fast tensor batch iterator."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch

from lightning_modules.data.datasets import DATASETS, ArrayDataset
from lightning_modules.data.preprocessing import fit_transform_splits
from lightning_modules.data.splits import SplitConfig, split_dataset


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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n)
            x, y = self.x[order], self.y[order]
        else:
            x, y = self.x, self.y
        for start in range(0, n, self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]


class ArrayDataModule(L.LightningDataModule):
    """Loads a registered dataset, splits it, and fits preprocessing on train only.

    The test split is built but only `test_dataloader` serves it: training and validation
    never see it.
    """

    def __init__(
        self,
        dataset: str,
        split: SplitConfig,
        preprocessing: list[str],
        batch_size: int,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dataset_name, self.split_cfg = dataset, split
        self.preprocessing, self.batch_size, self.seed = list(preprocessing), batch_size, seed
        self.data: ArrayDataset = DATASETS.get(dataset)(seed)
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def task(self) -> str:
        return self.data.task

    @property
    def num_features(self) -> int:
        return self.data.num_features

    @property
    def num_outputs(self) -> int:
        return self.data.num_outputs

    @property
    def num_train(self) -> int:
        return len(self.split_tensors("train")[0])

    def setup(self, stage: str | None = None) -> None:
        if self._tensors is not None:
            return
        idx = split_dataset(self.data, self.split_cfg, self.seed)
        flat = self.data.x.reshape(len(self.data.x), -1)
        train, (val, test), _ = fit_transform_splits(
            self.preprocessing, flat[idx.train], [flat[idx.val], flat[idx.test]]
        )
        y = self.data.y if self.task == "classification" else self.data.y.astype(np.float32)
        self._tensors = {
            name: (torch.from_numpy(np.ascontiguousarray(xs)), torch.from_numpy(y[ix]))
            for name, xs, ix in (("train", train, idx.train), ("val", val, idx.val), ("test", test, idx.test))
        }

    def split_tensors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        self.setup()
        assert self._tensors is not None
        return self._tensors[name]

    def _batches(self, name: str, shuffle: bool) -> TensorBatches:
        x, y = self.split_tensors(name)
        return TensorBatches(x, y, self.batch_size, shuffle)

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", shuffle=False)
