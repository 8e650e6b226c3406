"""Optimizers and learning-rate schedules."""

from lightning_modules.optim.optimizers import OPTIMIZERS, OptimizerConfig, build_optimizer
from lightning_modules.optim.schedules import SCHEDULES, ScheduleConfig, build_scheduler

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "OptimizerConfig",
    "ScheduleConfig",
    "build_optimizer",
    "build_scheduler",
]
