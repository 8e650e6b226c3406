"""Optimizer registry: name -> factory(params, config)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable

import torch
from pydantic import Field, field_validator

from lightning_modules.config import Config
from lightning_modules.registry import Registry

OPTIMIZERS: Registry[Callable[[Iterable[torch.nn.Parameter], "OptimizerConfig"], torch.optim.Optimizer]] = (
    Registry("optimizer")
)


class OptimizerConfig(Config):
    """`weight_decay` is decoupled for adamw and an L2 term in the gradient for the others."""

    name: str = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        return OPTIMIZERS.check(name)


@OPTIMIZERS.register("adamw")
def adamw(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adam")
def adam(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name)(params, cfg)
