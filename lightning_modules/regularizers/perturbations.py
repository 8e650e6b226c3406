"""Regularizers that change what one training mini-batch looks like; evaluation never sees them.

- label smoothing: cross-entropy against (1 - eps) * one-hot + eps / K, computed as
  (1 - eps) * CE(out, y) + eps * mean_k(-log softmax(out)_k);
- Gaussian input noise: x + sigma * N(0, 1);
- mixup (Zhang et al., 2018): x = lam * x + (1 - lam) * x[perm], lam ~ Beta(alpha, alpha), and
  the loss lam * L(out, y) + (1 - lam) * L(out, y[perm]).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch.nn import functional as F

from lightning_modules.regularizers.base import REGULARIZERS, Criterion, Regularizer, RegularizerEntry


class LabelSmoothing(Regularizer):
    def __init__(self, eps: float) -> None:
        self.eps = eps

    def batch(self, x: torch.Tensor, y: torch.Tensor, criterion: Criterion) -> tuple[torch.Tensor, Criterion]:
        eps = self.eps

        def smoothed(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            # The uniform part, averaged over every position like the criterion itself.
            return (1.0 - eps) * criterion(out, target) - eps * F.log_softmax(out, dim=-1).mean()

        return x, smoothed


class InputNoise(Regularizer):
    def __init__(self, sigma: float) -> None:
        self.sigma = sigma

    def batch(self, x: torch.Tensor, y: torch.Tensor, criterion: Criterion) -> tuple[torch.Tensor, Criterion]:
        return x + self.sigma * torch.randn_like(x), criterion


class Mixup(Regularizer):
    def __init__(self, alpha: float) -> None:
        self.beta = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))

    def batch(self, x: torch.Tensor, y: torch.Tensor, criterion: Criterion) -> tuple[torch.Tensor, Criterion]:
        lam = float(self.beta.sample())
        perm = torch.randperm(len(x), device=x.device)

        def mixed(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return lam * criterion(out, target) + (1.0 - lam) * criterion(out, target[perm])

        return lam * x + (1.0 - lam) * x[perm], mixed


def _label_smoothing(eps: float, task: str) -> Regularizer | None:
    if eps > 0 and task != "classification":
        raise ValueError(f"train.regularization.label_smoothing applies to classification, not {task}")
    return LabelSmoothing(eps) if eps > 0 else None


def _input_noise(sigma: float, task: str) -> Regularizer | None:
    return InputNoise(sigma) if sigma > 0 else None


def _mixup(alpha: float, task: str) -> Regularizer | None:
    return Mixup(alpha) if alpha > 0 else None


REGULARIZERS.register("label_smoothing")(
    RegularizerEntry(float, Field(0.0, ge=0.0, lt=1.0), _label_smoothing, order=10)
)
REGULARIZERS.register("mixup_alpha")(RegularizerEntry(float, Field(0.0, ge=0.0), _mixup, order=20))
REGULARIZERS.register("input_noise")(RegularizerEntry(float, Field(0.0, ge=0.0), _input_noise, order=30))
