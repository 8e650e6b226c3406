"""The LR range test of a study's model and data (Smith 2017): a fresh model, its optimizer
and regularizers, the LR raised exponentially step by step until the loss diverges."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
import torch

from harness.errors import SpecError
from harness.study import StudySpec
from harness.trial.build import build, threads
from lightning_modules.data import ArrayDataModule, TensorBatches
from lightning_modules.optim import LRRange, build_optimizer, lr_range_test


@dataclass(frozen=True)
class LRFindSettings:
    min_lr: float = 1e-7
    max_lr: float = 10.0
    num_steps: int = 300
    smoothing: float = 0.9
    diverge_factor: float = 4.0

    def check(self) -> None:
        """Raise SpecError on settings the sweep cannot run with (before anything is written)."""
        if not 0 < self.min_lr < self.max_lr:
            raise SpecError(f"--min-lr / --max-lr: need 0 < min_lr < max_lr (given {self.min_lr}, {self.max_lr})")
        if self.num_steps < 10:
            raise SpecError(f"--steps: need at least 10 steps (given {self.num_steps})")


def _endless(dm: ArrayDataModule) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Train mini-batches, reshuffled on every pass, for as many steps as the sweep takes."""
    x, y = dm.split_tensors("train")
    while True:
        yield from TensorBatches(x, y, dm.batch_size, shuffle=True)


def sweep(spec: StudySpec, settings: LRFindSettings) -> tuple[LRRange, int, float]:
    """Run the range test on a fresh model of `spec` with its optimizer and regularizers
    (the schedule is replaced by the sweep). Returns (result, batch size, lr factor)."""
    L.seed_everything(spec.seed, verbose=False)
    torch.set_num_threads(threads(spec))
    dm, module = build(spec)
    optimizer = build_optimizer(module.parameters(), module.optimizer_cfg)
    batches = _endless(dm)

    def step(lr: float) -> float:
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        return float(module.manual_step(x, y, optimizer))

    result = lr_range_test(
        step,
        min_lr=settings.min_lr,
        max_lr=settings.max_lr,
        num_steps=settings.num_steps,
        smoothing=settings.smoothing,
        diverge_factor=settings.diverge_factor,
    )
    return result, dm.batch_size, module.optimizer_cfg.lr / spec.train.optimizer.lr


def at_found_lr(spec: StudySpec, settings: LRFindSettings | None = None) -> tuple[StudySpec, float]:
    """`train.lr_find`: the spec at the LR the range test suggests for its model and data, and
    that LR. The sweep is seeded like the trial, so a resumed trial finds the same LR."""
    result, _, factor = sweep(spec, settings or LRFindSettings())
    raw = spec.to_dict()
    # The suggestion is the LR trained at; an LR scaling rule multiplies the configured one.
    raw["train"]["optimizer"]["lr"] = result.suggestion / factor
    return StudySpec.model_validate(raw), result.suggestion
