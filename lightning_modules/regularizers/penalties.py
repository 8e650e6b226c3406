"""Weight penalties on weight tensors (2+ dimensions; biases and norm scales are not penalized).

L2 adds `l2 * w` to each gradient: the gradient of (l2 / 2) * ||w||^2, the same update as
torch's coupled `weight_decay`. L1 is proximal: after each optimizer step, weights are
soft-thresholded, w <- sign(w) * max(|w| - lr * l1, 0), which sets small weights to exactly
zero (a subgradient step would only make them oscillate around zero). Elastic net is
strength * (alpha * ||w||_1 + (1 - alpha) / 2 * ||w||^2), its parts applied as above.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch.nn import functional as F

from lightning_modules.config import Config
from lightning_modules.regularizers.base import REGULARIZERS, Regularizer, RegularizerEntry


class L2Penalty(Regularizer):
    def __init__(self, strength: float) -> None:
        self.strength = strength

    def gradients(self, weights: list[torch.Tensor]) -> None:
        grads = [w.grad for w in weights if w.grad is not None]
        if grads:
            torch._foreach_add_(grads, [w for w in weights if w.grad is not None], alpha=self.strength)


class L1Proximal(Regularizer):
    def __init__(self, strength: float) -> None:
        self.strength = strength

    def after_step(self, weights: list[torch.Tensor], lr: float) -> None:
        threshold = lr * self.strength
        for w in weights:
            w.copy_(F.softshrink(w, threshold))


class ElasticNetConfig(Config):
    """strength * (alpha * L1 + (1 - alpha) * L2 / 2); strength 0 turns it off."""

    strength: float = Field(0.0, ge=0.0)
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="the L1 share: 1 is pure L1, 0 pure L2")


def _l1(strength: float, task: str) -> Regularizer | None:
    return L1Proximal(strength) if strength > 0 else None


def _l2(strength: float, task: str) -> Regularizer | None:
    return L2Penalty(strength) if strength > 0 else None


class ElasticNet(Regularizer):
    def __init__(self, cfg: ElasticNetConfig) -> None:
        self.l1 = L1Proximal(cfg.strength * cfg.alpha)
        self.l2 = L2Penalty(cfg.strength * (1.0 - cfg.alpha))

    def gradients(self, weights: list[torch.Tensor]) -> None:
        if self.l2.strength > 0:
            self.l2.gradients(weights)

    def after_step(self, weights: list[torch.Tensor], lr: float) -> None:
        if self.l1.strength > 0:
            self.l1.after_step(weights, lr)


def _elastic_net(cfg: ElasticNetConfig, task: str) -> Regularizer | None:
    return ElasticNet(cfg) if cfg.strength > 0 else None


REGULARIZERS.register("l1")(RegularizerEntry(float, Field(0.0, ge=0.0), _l1, order=40))
REGULARIZERS.register("l2")(RegularizerEntry(float, Field(0.0, ge=0.0), _l2, order=41))
REGULARIZERS.register("elastic_net")(
    RegularizerEntry(ElasticNetConfig, Field(default_factory=ElasticNetConfig), _elastic_net, order=42)
)
