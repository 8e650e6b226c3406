"""Early stopping on a validation metric, as a Lightning callback whose state is checkpointed."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
from pydantic import Field

from lightning_modules.config import Config

REASON = "early_stopping"


class EarlyStoppingConfig(Config):
    """Stop when `metric` has not improved by more than `min_delta` for `patience` epochs in a
    row (val/loss must fall, val/acc rise); `patience: null` turns it off."""

    patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    metric: Literal["val/loss", "val/acc"] = "val/loss"


class EarlyStopping(L.Callback):
    """Reads the module's `epoch_metrics(("val",))` after each validation; sets
    `trainer.should_stop` and `reason` when patience runs out."""

    def __init__(self, cfg: EarlyStoppingConfig) -> None:
        if cfg.patience is None:
            raise ValueError("early stopping needs a patience")
        self.cfg = cfg
        self.sign = 1.0 if cfg.metric.endswith("loss") else -1.0
        self.best, self.best_epoch, self.wait = math.inf, 0, 0
        self.reason: str | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = pl_module.epoch_metrics(("val",)).get(self.cfg.metric)  # type: ignore[operator]
        if value is None:
            return
        epoch = trainer.current_epoch + 1
        if self.sign * value < self.best - self.cfg.min_delta:
            self.best, self.best_epoch, self.wait = self.sign * value, epoch, 0
            return
        self.wait += 1
        if self.wait >= self.cfg.patience:  # type: ignore[operator]
            trainer.should_stop = True
            self.reason = (
                f"{REASON}: {self.cfg.metric} did not improve by more than {self.cfg.min_delta:g} "
                f"for {self.wait} epochs (best {self.sign * self.best:.6g} at epoch {self.best_epoch})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state_dict["best"], state_dict["best_epoch"], state_dict["wait"]
