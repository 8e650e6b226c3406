"""Learning-rate schedule registry: name -> LR multiplier as a function of the step."""

from __future__ import annotations

import math
from typing import Callable

import torch
from pydantic import Field, field_validator

from lightning_modules.config import Config
from lightning_modules.registry import Registry

# An entry maps (config, total_steps, steps_per_epoch) to f(step) -> LR multiplier.
SCHEDULES: Registry[Callable[["ScheduleConfig", int, int], Callable[[int], float]]] = Registry("schedule")


class ScheduleConfig(Config):
    """Every schedule is stepped per optimizer step; `warmup_epochs` ramps linearly from ~0."""

    name: str = "constant"
    warmup_epochs: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        return SCHEDULES.check(name)


def _warmup(factor: Callable[[int], float], warmup_steps: int) -> Callable[[int], float]:
    def with_warmup(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return factor(step - warmup_steps)

    return with_warmup


@SCHEDULES.register("constant")
def constant(cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    return _warmup(lambda step: 1.0, cfg.warmup_epochs * steps_per_epoch)


@SCHEDULES.register("cosine")
def cosine(cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    """Half a cosine from 1 down to `min_lr_ratio` over the steps after warmup."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    span = max(1, total_steps - warmup)

    def factor(step: int) -> float:
        progress = min(step, span) / span
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return _warmup(factor, warmup)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    factor = SCHEDULES.get(cfg.name)(cfg, total_steps, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
