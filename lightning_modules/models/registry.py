"""Model registry: each entry pairs a typed config with a builder of the torch network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from lightning_modules.config import Config
from lightning_modules.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """`build(config, num_features, num_outputs)` returns an nn.Module mapping x -> outputs."""

    config: type[Config]
    build: Callable[..., nn.Module]


MODELS: Registry[ModelEntry] = Registry("model")


def build_network(cfg: Config, num_features: int, num_outputs: int) -> nn.Module:
    return MODELS.get(cfg.kind).build(cfg, num_features, num_outputs)  # type: ignore[attr-defined]
