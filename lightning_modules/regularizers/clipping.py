"""Gradient clipping, applied between backward and the optimizer step."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from lightning_modules.config import Config


class GradientClipConfig(Config):
    """`norm`: rescale all gradients together so their global L2 norm is at most `max`;
    `value`: clamp every gradient element to [-max, max]. `max: null` turns clipping off."""

    kind: Literal["norm", "value"] = "norm"
    max: float | None = Field(None, gt=0.0)


@torch.no_grad()
def clip_gradients(params: list[torch.Tensor], cfg: GradientClipConfig) -> torch.Tensor | None:
    """Clip in place; for `norm`, return the global norm before clipping (a tensor: no sync)."""
    if cfg.max is None:
        return None
    if cfg.kind == "norm":
        return torch.nn.utils.clip_grad_norm_(params, cfg.max)
    torch.nn.utils.clip_grad_value_(params, cfg.max)
    return None
