"""Datasets, splits, preprocessing and the datamodule."""

from lightning_modules.data import synthetic  # noqa: F401  (registers the sequence tasks)
from lightning_modules.data.datamodule import ArrayDataModule, GroupedBatches, StepGroup, TensorBatches, minibatches
from lightning_modules.data.datasets import DATASETS, ArrayDataset, DataKind, DatasetEntry, DataShape, dataset_config
from lightning_modules.data.preprocessing import PREPROCESSORS
from lightning_modules.data.splits import SPLITS, SplitConfig

__all__ = [
    "DATASETS",
    "PREPROCESSORS",
    "SPLITS",
    "ArrayDataModule",
    "ArrayDataset",
    "DataKind",
    "DataShape",
    "DatasetEntry",
    "GroupedBatches",
    "SplitConfig",
    "StepGroup",
    "TensorBatches",
    "dataset_config",
    "minibatches",
]
