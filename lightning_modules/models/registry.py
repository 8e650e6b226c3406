"""Model registry: each entry pairs a typed config with a builder of the torch network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from lightning_modules.config import Config
from lightning_modules.data.datasets import DATA_KINDS, DataKind, DataShape
from lightning_modules.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """`build(config, shape)` returns an nn.Module mapping a batch of x to outputs of shape
    (batch, *shape.output); `accepts` lists the kinds of data the network can read."""

    config: type[Config]
    build: Callable[..., nn.Module]
    accepts: tuple[DataKind, ...] = DATA_KINDS


MODELS: Registry[ModelEntry] = Registry("model", tag="kind")


def build_network(cfg: Config, shape: DataShape) -> nn.Module:
    entry = MODELS.get(cfg.kind)  # type: ignore[attr-defined]
    if shape.kind not in entry.accepts:
        raise ValueError(f"model {cfg.kind!r} needs {' or '.join(entry.accepts)} data, given {shape.kind} data")  # type: ignore[attr-defined]
    return entry.build(cfg, shape)


def models_for(data_kind: DataKind) -> list[str]:
    """The registered models that can read `data_kind` data."""
    return [name for name in MODELS.names() if data_kind in MODELS.get(name).accepts]
