"""Lightning callbacks of a trial: reseed and report every epoch, and let a restored checkpoint
take the module's configured optimizer settings."""

from __future__ import annotations

import math
from typing import Any, Protocol

import lightning as L
import torch

from lightning_modules.regularizers import EarlyStopping
from lightning_modules.training.metrics import data_metrics


class NonFiniteLossError(FloatingPointError):
    """The training or validation loss became NaN or infinite."""


class EpochSink(Protocol):
    def __call__(self, metrics: dict[str, Any], trainer: L.Trainer) -> None: ...


def epoch_seed(seed: int, epoch: int) -> int:
    # Reseeding per epoch makes epoch k depend only on (config, weights after k-1), so a fit
    # resumed from a checkpoint follows the same path as one that never stopped.
    return (seed * 1_000_003 + epoch) % (2**63)


def check_finite(metrics: dict[str, Any], epoch: int, what: str = "") -> None:
    """Raise NonFiniteLossError when the train or val loss in `metrics` is NaN or infinite."""
    for key in ("train/loss", "val/loss"):
        if key in metrics and not math.isfinite(metrics[key]):
            raise NonFiniteLossError(f"{key}{what} became {metrics[key]} at epoch {epoch}")


class MetricCallback(L.Callback):
    """A callback whose scores join the epoch report; listed before the `EpochReporter`, its
    `on_train_epoch_end` has run when the reporter reads `epoch_metrics()`."""

    def epoch_metrics(self) -> dict[str, float]:
        return {}


class EpochReporter(L.Callback):
    """Hands each finished epoch's metrics to a sink; fails the fit on a non-finite loss."""

    def __init__(self, seed: int, sink: EpochSink, stop_after: int | None = None) -> None:
        self.seed, self.sink, self.stop_after = seed, sink, stop_after

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seed = epoch_seed(self.seed, trainer.current_epoch)
        # Only the generators a fit draws from: `torch.manual_seed` also queues lazy seeding of
        # every accelerator backend, recording the call stack, which costs more than an
        # optimizer step of a small model deep inside Lightning's loop.
        torch.default_generator.manual_seed(seed)
        if pl_module.device.type == "cuda":
            torch.cuda.manual_seed(seed)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        metrics: dict[str, Any] = {"epoch": epoch, **pl_module.epoch_metrics()}  # type: ignore[operator]
        metrics.update(data_metrics(trainer, pl_module))  # per-regime val scores, outlier counts
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, MetricCallback):
                metrics.update(callback.epoch_metrics())
        check_finite(metrics, epoch)
        # Early stopping decides after this epoch's validation, which runs before this hook.
        reasons = [cb.reason for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]  # type: ignore[attr-defined]
        if any(reasons):
            metrics["stop_reason"] = next(r for r in reasons if r)
        self.sink(metrics, trainer)
        if self.stop_after is not None and epoch >= self.stop_after:
            trainer.should_stop = True


class SpecOnRestore(L.Callback):
    """After a checkpoint restore, the optimizer and LR schedule take the module's configured
    settings rather than the checkpoint's.

    PBT continues a trial from another trial's checkpoint with a mutated config (a new lr or
    weight decay, say); the restored optimizer state would bring the old values back. The
    schedule's progress is kept: the LR is rescaled from the old base LR to the new one. On a
    plain resume the values are equal and nothing changes.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from lightning.pytorch.core.optimizer import _init_optimizers_and_lr_schedulers

        fresh_optimizers, fresh_schedulers = _init_optimizers_and_lr_schedulers(pl_module)
        for live, fresh in zip(trainer.optimizers, fresh_optimizers):
            for group, new in zip(live.param_groups, fresh.param_groups):
                old_base, new_base = group.get("initial_lr", group["lr"]), new.get("initial_lr", new["lr"])
                group.update({k: v for k, v in new.items() if k not in ("params", "lr", "initial_lr")})
                group["lr"] = group["lr"] * (new_base / old_base)
                if "initial_lr" in group:
                    group["initial_lr"] = new_base
        for live_config, fresh_config in zip(trainer.lr_scheduler_configs, fresh_schedulers):
            if hasattr(live_config.scheduler, "base_lrs"):
                live_config.scheduler.base_lrs = list(fresh_config.scheduler.base_lrs)
