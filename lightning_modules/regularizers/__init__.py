"""Regularizers: weight penalties, batch perturbations, gradient clipping, early stopping, and the
per-epoch evidence of what they do.

`RegularizationConfig` (the spec's `train.regularization`) has one field per registry entry,
so adding a regularizer is one entry.
"""

from __future__ import annotations

from typing import Any

from pydantic import create_model

from lightning_modules.config import Config
from lightning_modules.regularizers import augmentation, penalties, perturbations  # noqa: F401  (fill the registry)
from lightning_modules.regularizers.base import REGULARIZERS, Criterion, Regularizer, RegularizerEntry, Regularizers
from lightning_modules.regularizers.clipping import GradientClipConfig, clip_gradients
from lightning_modules.regularizers.early_stopping import EarlyStopping, EarlyStoppingConfig
from lightning_modules.regularizers.evidence import (
    gradient_norms,
    gradient_snapshot,
    weight_histogram,
    weight_statistics,
    weight_tensors,
)
from lightning_modules.regularizers.penalties import ElasticNetConfig


def _entries() -> list[tuple[str, RegularizerEntry]]:
    return sorted(((name, REGULARIZERS.get(name)) for name in REGULARIZERS.names()), key=lambda item: item[1].order)


RegularizationConfig: type[Config] = create_model(  # type: ignore[call-overload]
    "RegularizationConfig",
    __base__=Config,
    __doc__="Composable regularizers; every weight 0 (the default) turns its regularizer off.",
    **{name: (entry.annotation, entry.field) for name, entry in _entries()},
)


def build_regularizers(cfg: Any, task: str) -> Regularizers:
    """The regularizers `cfg` (a RegularizationConfig) turns on, in application order."""
    built = (entry.build(getattr(cfg, name), task) for name, entry in _entries())
    return Regularizers([regularizer for regularizer in built if regularizer is not None])


__all__ = [
    "REGULARIZERS",
    "Criterion",
    "EarlyStopping",
    "EarlyStoppingConfig",
    "ElasticNetConfig",
    "GradientClipConfig",
    "RegularizationConfig",
    "Regularizer",
    "RegularizerEntry",
    "Regularizers",
    "build_regularizers",
    "clip_gradients",
    "gradient_norms",
    "gradient_snapshot",
    "weight_histogram",
    "weight_statistics",
    "weight_tensors",
]
