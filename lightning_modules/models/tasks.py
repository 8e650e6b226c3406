"""Supervised tasks: what the network's output means and how it is scored. A task gives the
training loss, each sample's loss and correctness (for scores by group), and the names of the
per-epoch metrics; `SupervisedModule` holds one and branches on nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from lightning_modules.registry import Registry

# Equal-width confidence bins for the expected calibration error, as Guo et al. (2017) use.
CALIBRATION_BINS = 15


@dataclass(frozen=True)
class Task:
    """Base of the task entries; subclasses implement the scoring of one kind of target."""

    metrics: tuple[str, ...] = ("loss",)  # the `split/<name>` metrics an epoch reports

    def output(self, out: torch.Tensor) -> torch.Tensor:
        """The network's raw output as the task reads it."""
        return out

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean loss over samples (and time steps, for per-step targets)."""
        raise NotImplementedError

    def sample_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each sample's loss (per-step targets averaged over steps)."""
        raise NotImplementedError

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Each sample's fraction of correct predictions, or None where correctness is undefined."""
        return None

    def calibration(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Per confidence bin: (predictions, sum of confidences, correct predictions), a (3, bins)
        tensor; None where the output is not a probability."""
        return None


@dataclass(frozen=True)
class Classification(Task):
    """Cross-entropy over class logits (classes last); accuracy by arg-max."""

    metrics: tuple[str, ...] = ("loss", "acc")

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    def sample_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none").reshape(y.shape)
        return loss.mean(-1) if loss.dim() > 1 else loss

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        hits = (out.argmax(-1) == y).float()
        return hits.mean(-1) if hits.dim() > 1 else hits

    def calibration(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Every prediction counts (each time step of per-step targets), binned by its top-class
        # softmax probability; ECE = sum over bins of |correct - confidence| / predictions.
        probs = torch.softmax(out.reshape(-1, out.shape[-1]).float(), dim=-1)
        confidence, predicted = probs.max(-1)
        hits = (predicted == y.reshape(-1)).float()
        # clamp both ends: a diverged (NaN) output must not index outside the bins before the loss check fails it
        bins = (confidence * CALIBRATION_BINS).long().clamp_(0, CALIBRATION_BINS - 1)
        sums = torch.zeros(3, CALIBRATION_BINS, device=out.device)
        sums[0].index_add_(0, bins, torch.ones_like(confidence))
        sums[1].index_add_(0, bins, confidence)
        sums[2].index_add_(0, bins, hits)
        return sums


@dataclass(frozen=True)
class Regression(Task):
    """Mean squared error on a scalar output per sample (or per time step)."""

    def output(self, out: torch.Tensor) -> torch.Tensor:
        return out.squeeze(-1)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, y)

    def sample_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = (out - y) ** 2
        return loss.mean(-1) if loss.dim() > 1 else loss


TASKS: Registry[Task] = Registry("task")
TASKS.register("classification")(Classification())
TASKS.register("regression")(Regression())
