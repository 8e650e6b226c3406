"""Datasets, splits, preprocessing and the datamodule."""

# Each module registers its entries on import (datasets, splits, preprocessing steps).
from lightning_modules.data import features, kalman, motor, outliers, regimes, signal, synthetic, timeseries  # noqa: F401
from lightning_modules.data.datamodule import (
    ArrayDataModule,
    GroupedBatches,
    StepGroup,
    SubsetDataModule,
    TensorBatches,
    minibatches,
)
from lightning_modules.data.datasets import DATASETS, ArrayDataset, DataKind, DatasetEntry, DataShape, dataset_config
from lightning_modules.data.preprocessing import PREPROCESSORS, Step, StepConfig, prepare_splits, step_config
from lightning_modules.data.regimes import grouped_metrics
from lightning_modules.data.splits import SPLITS, SplitConfig, split_config, split_configs

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
    "Step",
    "StepConfig",
    "StepGroup",
    "SubsetDataModule",
    "TensorBatches",
    "dataset_config",
    "grouped_metrics",
    "minibatches",
    "prepare_splits",
    "split_config",
    "split_configs",
    "step_config",
]
