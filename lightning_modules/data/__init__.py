"""Datasets, splits, preprocessing and the datamodule."""

from lightning_modules.data.datamodule import ArrayDataModule, GroupedBatches, StepGroup, TensorBatches, minibatches
from lightning_modules.data.datasets import DATASETS, ArrayDataset
from lightning_modules.data.preprocessing import PREPROCESSORS
from lightning_modules.data.splits import SPLITS, SplitConfig

__all__ = [
    "DATASETS",
    "PREPROCESSORS",
    "SPLITS",
    "ArrayDataModule",
    "ArrayDataset",
    "GroupedBatches",
    "SplitConfig",
    "StepGroup",
    "TensorBatches",
    "minibatches",
]
