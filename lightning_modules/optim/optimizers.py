"""Optimizer registry: name -> entry (factory and the config knobs it reads).

`weight_decay` means decoupled weight decay (Loshchilov & Hutter, 2019) for every optimizer:
p <- p * (1 - lr * weight_decay) beside the gradient step, on weight tensors only (biases
and norm scales are not decayed). An explicit L2 penalty in the gradient is a regularizer
(`train.regularization.l2`), so "Adam + L2" and "AdamW" are two different settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, PositiveInt, field_validator, model_validator

from lightning_modules.config import Config
from lightning_modules.registry import Registry

# Knobs only some optimizers read; a non-default value for an optimizer that ignores it is an error.
OPTIONAL_KNOBS = ("momentum", "nesterov", "betas", "eps", "alpha")


@dataclass(frozen=True)
class OptimizerEntry:
    """`build(param_groups, config)` returns the torch optimizer; `knobs` lists the optional
    config fields it reads."""

    build: Callable[[list[dict[str, Any]], OptimizerConfig], torch.optim.Optimizer]
    knobs: frozenset[str]
    decay_key: str = "decoupled_weight_decay"  # the param-group key that holds the decay


OPTIMIZERS: Registry[OptimizerEntry] = Registry("optimizer")


class LRScalingConfig(Config):
    """Scale `lr` with the batch size: lr * (batch / reference) (linear) or its square root."""

    reference_batch_size: PositiveInt
    rule: Literal["linear", "sqrt"] = "linear"


class OptimizerConfig(Config):
    """One flat config for every optimizer; each reads the knobs its registry entry names."""

    name: str = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0, description="decoupled weight decay, on weight tensors")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="sgd, rmsprop")
    nesterov: bool = Field(False, description="sgd; needs momentum > 0")
    betas: tuple[float, float] = Field((0.9, 0.999), description="adam, adamw")
    eps: float = Field(1e-8, gt=0.0, description="adam, adamw, rmsprop")
    alpha: float = Field(0.99, gt=0.0, lt=1.0, description="rmsprop: smoothing of the squared gradient")
    lr_scaling: LRScalingConfig | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        return OPTIMIZERS.check(name)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"each beta must be in [0, 1) (given {list(betas)})")
        return betas

    @model_validator(mode="after")
    def _knobs_fit_the_optimizer(self) -> OptimizerConfig:
        used = OPTIMIZERS.get(self.name).knobs
        for knob in OPTIONAL_KNOBS:
            if knob not in used and getattr(self, knob) != type(self).model_fields[knob].default:
                readers = ", ".join(n for n in OPTIMIZERS.names() if knob in OPTIMIZERS.get(n).knobs)
                raise ValueError(f"{knob} is not used by {self.name}; it applies to: {readers}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self

    def for_batch_size(self, batch_size: int) -> OptimizerConfig:
        """This config with `lr_scaling` applied to `batch_size` (and then dropped)."""
        if self.lr_scaling is None:
            return self
        ratio = batch_size / self.lr_scaling.reference_batch_size
        factor = ratio if self.lr_scaling.rule == "linear" else math.sqrt(ratio)
        return self.model_copy(update={"lr": self.lr * factor, "lr_scaling": None})


class DecoupledWeightDecay:
    """Mixin for torch optimizers without a decoupled decay: each group's
    `decoupled_weight_decay` shrinks its parameters by (1 - lr * decay) before the step."""

    param_groups: list[dict[str, Any]]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            # As AdamW does: the closure sees the parameters before this step's decay.
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            decay = group.get("decoupled_weight_decay", 0.0)
            params = [p for p in group["params"] if p.grad is not None]
            if decay and params:
                torch._foreach_mul_(params, 1.0 - group["lr"] * decay)
        super().step()  # type: ignore[misc]
        return loss


class SGDW(DecoupledWeightDecay, torch.optim.SGD):
    """SGD (with momentum / Nesterov) and decoupled weight decay."""


class RMSpropW(DecoupledWeightDecay, torch.optim.RMSprop):
    """RMSprop and decoupled weight decay."""


def param_groups(params: Iterable[torch.nn.Parameter], weight_decay: float, key: str) -> list[dict[str, Any]]:
    """Weight tensors (2+ dimensions) decayed under `key`; biases and norm scales not."""
    params = [p for p in params if p.requires_grad]
    weights = [p for p in params if p.ndim >= 2]
    others = [p for p in params if p.ndim < 2]
    groups = [{"params": weights, key: weight_decay}, {"params": others, key: 0.0}]
    return [group for group in groups if group["params"]] or [{"params": params}]


def _adamw(groups: list[dict[str, Any]], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def _adam(groups: list[dict[str, Any]], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    # With weight_decay > 0 this is AdamW's update: `weight_decay` is decoupled everywhere.
    return torch.optim.Adam(
        groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, decoupled_weight_decay=True
    )


def _sgd(groups: list[dict[str, Any]], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return SGDW(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def _rmsprop(groups: list[dict[str, Any]], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return RMSpropW(groups, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum)


OPTIMIZERS.register("adamw")(OptimizerEntry(_adamw, frozenset({"betas", "eps"}), decay_key="weight_decay"))
OPTIMIZERS.register("adam")(OptimizerEntry(_adam, frozenset({"betas", "eps"}), decay_key="weight_decay"))
OPTIMIZERS.register("sgd")(OptimizerEntry(_sgd, frozenset({"momentum", "nesterov"})))
OPTIMIZERS.register("rmsprop")(OptimizerEntry(_rmsprop, frozenset({"momentum", "alpha", "eps"})))

def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The configured optimizer over `params` (at `cfg.lr`; `lr_scaling` is applied by the caller)."""
    entry = OPTIMIZERS.get(cfg.name)
    return entry.build(param_groups(params, cfg.weight_decay, entry.decay_key), cfg)
