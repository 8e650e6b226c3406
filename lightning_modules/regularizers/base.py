"""The regularizer registry and the hooks a regularizer plugs into the training step.

A regularizer overrides only the hooks it needs; the training step calls a hook only if at
least one configured regularizer overrides it, so an unregularized step costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lightning_modules.registry import Registry

# (outputs, targets) -> mean loss; classification outputs carry the classes on the last dim.
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Regularizer:
    """Hooks, in the order the training step calls them; each default does nothing."""

    def batch(self, x: torch.Tensor, y: torch.Tensor, criterion: Criterion) -> tuple[torch.Tensor, Criterion]:
        """The training inputs and criterion for one mini-batch (never used in evaluation)."""
        return x, criterion

    def gradients(self, weights: list[torch.Tensor]) -> None:
        """Add a penalty's gradient to `w.grad` of every weight tensor, after backward."""

    def after_step(self, weights: list[torch.Tensor], lr: float) -> None:
        """Change the weights after the optimizer step (a proximal step)."""


@dataclass(frozen=True)
class RegularizerEntry:
    """`annotation` and `field` declare the entry's `train.regularization.<name>` spec value;
    `build(value, task)` returns the regularizer, or None when the value turns it off.
    Entries apply in ascending `order` (label smoothing wraps the loss before mixup mixes it);
    `kinds` names the data kinds an entry applies to (empty: every kind)."""

    annotation: Any
    field: Any
    build: Callable[[Any, str], Regularizer | None]
    order: int
    kinds: tuple[str, ...] = ()


REGULARIZERS: Registry[RegularizerEntry] = Registry("regularizer")


def overrides(regularizer: Regularizer, hook: str) -> bool:
    return getattr(type(regularizer), hook) is not getattr(Regularizer, hook)


class Regularizers:
    """The configured regularizers, grouped by the hooks they use."""

    def __init__(self, items: list[Regularizer]) -> None:
        self.items = items
        self.batch_hooks = [r for r in items if overrides(r, "batch")]
        self.gradient_hooks = [r for r in items if overrides(r, "gradients")]
        self.step_hooks = [r for r in items if overrides(r, "after_step")]

    def batch(self, x: torch.Tensor, y: torch.Tensor, criterion: Criterion) -> tuple[torch.Tensor, Criterion]:
        for regularizer in self.batch_hooks:
            x, criterion = regularizer.batch(x, y, criterion)
        return x, criterion

    @torch.no_grad()
    def gradients(self, weights: list[torch.Tensor]) -> None:
        for regularizer in self.gradient_hooks:
            regularizer.gradients(weights)

    @torch.no_grad()
    def after_step(self, weights: list[torch.Tensor], lr: float) -> None:
        for regularizer in self.step_hooks:
            regularizer.after_step(weights, lr)
