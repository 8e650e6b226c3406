"""Learning-rate schedule registry: name -> entry (scheduler factory, knobs, checks).

Every schedule but `plateau` is a multiplier of the base LR as a closed-form function of the
optimizer step, stepped once per optimizer step; `plateau` steps once per epoch on the
validation loss. `warmup_epochs` ramps linearly from lr / warmup_steps up to lr first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import Field, PositiveInt, field_validator, model_validator
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from lightning_modules.config import Config
from lightning_modules.registry import Registry

Scheduler = LRScheduler | ReduceLROnPlateau
Factor = Callable[[int], float]  # optimizer step (from 0) -> LR multiplier

# Knobs only some schedules read; a non-default value for a schedule that ignores it is an error.
OPTIONAL_KNOBS = (
    "warmup_epochs", "min_lr_ratio", "step_epochs", "gamma", "restart_epochs", "restart_mult",
    "pct_start", "div_factor", "final_div_factor", "factor", "patience", "threshold",
)


class ScheduleConfig(Config):
    """One flat config for every schedule; each reads the knobs its registry entry names."""

    name: str = "constant"
    warmup_epochs: int = Field(0, ge=0, description="linear warmup before the schedule (not one_cycle, plateau)")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="floor as a fraction of lr: cosine, sgdr, plateau")
    step_epochs: PositiveInt = Field(10, description="step: epochs between drops")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="step: factor per drop; exponential: factor per epoch")
    restart_epochs: PositiveInt = Field(5, description="sgdr: epochs in the first cycle")
    restart_mult: PositiveInt = Field(1, description="sgdr: each cycle is this many times longer than the last")
    pct_start: float = Field(0.3, gt=0.0, lt=1.0, description="one_cycle: fraction of steps spent rising")
    div_factor: float = Field(25.0, ge=1.0, description="one_cycle: starts at lr / div_factor")
    final_div_factor: float = Field(1e4, ge=1.0, description="one_cycle: ends at lr / (div_factor * final_div_factor)")
    factor: float = Field(0.1, gt=0.0, lt=1.0, description="plateau: LR multiplier on a plateau")
    patience: int = Field(2, ge=0, description="plateau: epochs without improvement before a cut")
    threshold: float = Field(1e-4, ge=0.0, description="plateau: relative improvement that counts")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        return SCHEDULES.check(name)

    @model_validator(mode="after")
    def _knobs_fit_the_schedule(self) -> ScheduleConfig:
        used = SCHEDULES.get(self.name).knobs
        for knob in OPTIONAL_KNOBS:
            if knob not in used and getattr(self, knob) != type(self).model_fields[knob].default:
                readers = ", ".join(n for n in SCHEDULES.names() if knob in SCHEDULES.get(n).knobs)
                raise ValueError(f"{knob} is not used by the {self.name} schedule; it applies to: {readers}")
        return self

    def check_fits(self, max_epochs: int) -> None:
        """Raise ValueError if the schedule cannot play out within `max_epochs`."""
        if self.warmup_epochs >= max_epochs:
            raise ValueError(f"schedule.warmup_epochs ({self.warmup_epochs}) must be < max_epochs ({max_epochs})")
        check = SCHEDULES.get(self.name).check
        if check is not None:
            check(self, max_epochs)


@dataclass(frozen=True)
class ScheduleEntry:
    """`build(optimizer, config, total_steps, steps_per_epoch)` returns the scheduler."""

    build: Callable[[torch.optim.Optimizer, ScheduleConfig, int, int], Scheduler]
    knobs: frozenset[str]
    per_epoch: bool = False  # stepped by the validation loss once per epoch, not per step
    check: Callable[[ScheduleConfig, int], None] | None = None
    # `factor(config, total_steps, steps_per_epoch)`: the closed-form LR multiplier per step,
    # warmup included; None for a schedule that follows the validation loss.
    factor: Callable[[ScheduleConfig, int, int], Factor] | None = None


SCHEDULES: Registry[ScheduleEntry] = Registry("schedule")


def _with_warmup(factor: Factor, warmup_steps: int) -> Factor:
    def with_warmup(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return factor(step - warmup_steps)

    return with_warmup


def per_step(
    name: str, knobs: set[str], check: Callable[[ScheduleConfig, int], None] | None = None
) -> Callable[[Callable[[ScheduleConfig, int, int], Factor]], Callable[[ScheduleConfig, int, int], Factor]]:
    """Register a closed-form schedule `make(cfg, steps_after_warmup, steps_per_epoch) -> f(step)`;
    warmup, when the schedule takes it, is prepended here."""

    def add(make: Callable[[ScheduleConfig, int, int], Factor]) -> Callable[[ScheduleConfig, int, int], Factor]:
        def factor(cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int) -> Factor:
            warmup = cfg.warmup_epochs * steps_per_epoch
            return _with_warmup(make(cfg, max(1, total_steps - warmup), steps_per_epoch), warmup)

        def build(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total: int, per_epoch: int) -> Scheduler:
            return LambdaLR(optimizer, factor(cfg, total, per_epoch))

        SCHEDULES.register(name)(ScheduleEntry(build, frozenset(knobs), check=check, factor=factor))
        return make

    return add


def _cosine(progress: float, floor: float) -> float:
    """Half a cosine from 1 (progress 0) down to `floor` (progress 1)."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@per_step("constant", {"warmup_epochs"})
def constant(cfg: ScheduleConfig, span: int, steps_per_epoch: int) -> Factor:
    return lambda step: 1.0


def _drops_within_training(cfg: ScheduleConfig, max_epochs: int) -> None:
    if cfg.step_epochs >= max_epochs - cfg.warmup_epochs:
        raise ValueError(
            f"schedule.step_epochs ({cfg.step_epochs}) must be < max_epochs - warmup_epochs "
            f"({max_epochs - cfg.warmup_epochs}), or the LR never drops"
        )


@per_step("step", {"warmup_epochs", "step_epochs", "gamma"}, check=_drops_within_training)
def step(cfg: ScheduleConfig, span: int, steps_per_epoch: int) -> Factor:
    """lr * gamma ** (completed step_epochs periods)."""
    period = cfg.step_epochs * steps_per_epoch
    return lambda t: cfg.gamma ** (t // period)


@per_step("exponential", {"warmup_epochs", "gamma"})
def exponential(cfg: ScheduleConfig, span: int, steps_per_epoch: int) -> Factor:
    """lr * gamma ** epochs, continuous in the step (gamma per epoch)."""
    return lambda t: cfg.gamma ** (t / steps_per_epoch)


@per_step("cosine", {"warmup_epochs", "min_lr_ratio"})
def cosine(cfg: ScheduleConfig, span: int, steps_per_epoch: int) -> Factor:
    """Half a cosine from lr down to lr * min_lr_ratio over the steps after warmup."""
    return lambda t: _cosine(min(t, span) / span, cfg.min_lr_ratio)


def _needs_warmup(cfg: ScheduleConfig, max_epochs: int) -> None:
    if cfg.warmup_epochs < 1:
        raise ValueError("the warmup_cosine schedule needs schedule.warmup_epochs >= 1")


@per_step("warmup_cosine", {"warmup_epochs", "min_lr_ratio"}, check=_needs_warmup)
def warmup_cosine(cfg: ScheduleConfig, span: int, steps_per_epoch: int) -> Factor:
    """Linear warmup, then cosine: `cosine` with a warmup required."""
    return cosine(cfg, span, steps_per_epoch)


def _first_cycle_fits(cfg: ScheduleConfig, max_epochs: int) -> None:
    if cfg.restart_epochs > max_epochs - cfg.warmup_epochs:
        raise ValueError(
            f"schedule.restart_epochs ({cfg.restart_epochs}) must be <= max_epochs - warmup_epochs "
            f"({max_epochs - cfg.warmup_epochs}), or no restart ever happens"
        )


@per_step("sgdr", {"warmup_epochs", "min_lr_ratio", "restart_epochs", "restart_mult"}, check=_first_cycle_fits)
def sgdr(cfg: ScheduleConfig, span: int, steps_per_epoch: int) -> Factor:
    """Cosine warm restarts (Loshchilov & Hutter, 2017): cycles of restart_epochs * restart_mult**i epochs."""
    first = cfg.restart_epochs * steps_per_epoch

    def factor(t: int) -> float:
        length = first
        while t >= length:
            t -= length
            length *= cfg.restart_mult
        return _cosine(t / length, cfg.min_lr_ratio)

    return factor


def cycle_ends(cfg: ScheduleConfig, max_epochs: int) -> list[int]:
    """The epochs (1-based) at which an SGDR cycle ends within `max_epochs`: where the LR is at
    its floor, just before a restart (snapshot ensembles keep the weights there)."""
    if cfg.name != "sgdr":
        raise ValueError(f"only the sgdr schedule has restarts (given {cfg.name!r})")
    ends, end, length = [], cfg.warmup_epochs, cfg.restart_epochs
    while end + length <= max_epochs:
        end += length
        ends.append(end)
        length *= cfg.restart_mult
    return ends


@per_step("one_cycle", {"pct_start", "div_factor", "final_div_factor"})
def one_cycle(cfg: ScheduleConfig, span: int, steps_per_epoch: int) -> Factor:
    """One cycle (Smith, 2018), as torch's OneCycleLR: cosine from lr / div_factor up to lr over
    pct_start of the steps, then cosine down to lr / (div_factor * final_div_factor)."""
    start, end = 1.0 / cfg.div_factor, 1.0 / (cfg.div_factor * cfg.final_div_factor)
    peak = cfg.pct_start * span - 1.0  # the step at the top, as OneCycleLR counts

    def factor(t: int) -> float:
        t = min(t, span - 1)
        if 0 < peak and t <= peak:
            return 1.0 + (start - 1.0) * 0.5 * (1.0 + math.cos(math.pi * t / peak))
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * (t - peak) / (span - 1 - peak)))

    return factor


def _plateau(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total: int, per_epoch: int) -> Scheduler:
    floors = [cfg.min_lr_ratio * group["lr"] for group in optimizer.param_groups]
    return ReduceLROnPlateau(
        optimizer, mode="min", factor=cfg.factor, patience=cfg.patience, threshold=cfg.threshold, min_lr=floors
    )


SCHEDULES.register("plateau")(
    ScheduleEntry(_plateau, frozenset({"factor", "patience", "threshold", "min_lr_ratio"}), per_epoch=True)
)


def lr_factor(cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int) -> Factor:
    """The closed-form LR multiplier of a per-step schedule (for plots and checks)."""
    factor = SCHEDULES.get(cfg.name).factor
    if factor is None:
        raise ValueError(f"the {cfg.name} schedule follows the validation loss; it has no closed form")
    return factor(cfg, total_steps, steps_per_epoch)


def is_per_epoch(cfg: ScheduleConfig) -> bool:
    return SCHEDULES.get(cfg.name).per_epoch


def is_constant(cfg: ScheduleConfig) -> bool:
    """Whether the LR never changes, so that stepping the schedule can be skipped."""
    return cfg.name == "constant" and cfg.warmup_epochs == 0


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int, steps_per_epoch: int
) -> Scheduler:
    return SCHEDULES.get(cfg.name).build(optimizer, cfg, total_steps, steps_per_epoch)
