"""Optimizers, learning-rate schedules and the LR range test."""

from lightning_modules.optim.lr_range import LRRange, lr_range_test, suggest_lr
from lightning_modules.optim.optimizers import (
    OPTIMIZERS,
    LRScalingConfig,
    OptimizerConfig,
    OptimizerEntry,
    build_optimizer,
)
from lightning_modules.optim.schedules import (
    SCHEDULES,
    ScheduleConfig,
    ScheduleEntry,
    build_scheduler,
    cycle_ends,
    is_constant,
    is_per_epoch,
    lr_factor,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "LRRange",
    "LRScalingConfig",
    "OptimizerConfig",
    "OptimizerEntry",
    "ScheduleConfig",
    "ScheduleEntry",
    "build_optimizer",
    "build_scheduler",
    "cycle_ends",
    "is_constant",
    "is_per_epoch",
    "lr_factor",
    "lr_range_test",
    "suggest_lr",
]
