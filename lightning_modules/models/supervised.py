"""The LightningModule that trains any registered network on a classification or regression task."""

from __future__ import annotations

from collections.abc import Iterable

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import nn
from torch.nn import functional as F

from lightning_modules.data.datamodule import Batch, StepGroup, minibatches
from lightning_modules.optim import OptimizerConfig, ScheduleConfig, build_optimizer, build_scheduler

# Lightning hooks that run around every backward pass and optimizer step.
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


class SupervisedModule(L.LightningModule):
    """Cross-entropy (classification) or MSE (regression) training of `net`.

    Optimization is manual: a batch is one (x, y) mini-batch or a `StepGroup` of several, and
    the module takes one optimizer step and one LR-schedule step per mini-batch, so that
    Lightning's per-batch work is paid once per group rather than once per step.

    Per-epoch metrics are accumulated as on-device tensor sums and read once per epoch by
    `epoch_metrics()`: logging every step through `self.log` costs more than a small model's
    forward pass. With `log_metrics` they are also logged once per epoch, for Lightning
    loggers and callbacks (EarlyStopping, ModelCheckpoint) that monitor them.
    """

    def __init__(
        self,
        net: nn.Module,
        task: str,
        optimizer: OptimizerConfig,
        schedule: ScheduleConfig,
        max_epochs: int,
        steps_per_epoch: int,
        log_metrics: bool = True,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.task = net, task
        self.optimizer_cfg, self.schedule_cfg = optimizer, schedule
        self.max_epochs, self.steps_per_epoch = max_epochs, steps_per_epoch
        self.log_metrics = log_metrics
        self._sums: dict[str, dict[str, torch.Tensor | int]] = {}
        self._direct_steps = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.task == "regression" else out

    def loss_and_outputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out, y) if self.task == "classification" else F.mse_loss(out, y)
        return loss, out

    def _accumulate(self, split: str, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        # The sample count is known on the host: a Python int costs no tensor op per step.
        n = len(y)
        add: dict[str, torch.Tensor | int] = {"loss": loss.detach() * n, "n": n}
        if self.task == "classification":
            add["correct"] = (out.detach().argmax(-1) == y).sum()
        sums = self._sums.setdefault(split, {})
        for key, value in add.items():
            sums[key] = sums[key] + value if key in sums else value

    def on_train_start(self) -> None:
        self._direct_steps = self._can_step_directly()

    def _can_step_directly(self) -> bool:
        """Whether `loss.backward()` and the bare optimizer step do exactly what Lightning's
        wrappers would: full precision on one device, and no hook watching each step."""
        trainer = self.trainer
        if type(trainer.precision_plugin) is not Precision or type(trainer.strategy) is not SingleDeviceStrategy:
            return False
        if any(is_overridden(hook, self, L.LightningModule) for hook in STEP_HOOKS):
            return False
        return not any(is_overridden(hook, cb, L.Callback) for cb in trainer.callbacks for hook in STEP_HOOKS)

    def _backward_and_step(self, optimizer: LightningOptimizer, loss: torch.Tensor) -> None:
        if self._direct_steps:
            # `manual_backward` + `optimizer.step()` dispatch four hooks per step through
            # Lightning's hook machinery; that costs ~15% of a small model's step and changes
            # nothing here. The step counter (trainer.global_step) is kept as Lightning keeps it.
            optimizer._on_before_step()
            loss.backward()
            optimizer.optimizer.step()
            optimizer._on_after_step()
        else:
            self.manual_backward(loss)
            optimizer.step()

    def training_step(self, batch: Batch | StepGroup, batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        assert isinstance(optimizer, LightningOptimizer)
        for x, y in minibatches(batch):
            loss, out = self.loss_and_outputs((x, y))
            optimizer.zero_grad()
            self._backward_and_step(optimizer, loss)
            scheduler.step()  # type: ignore[union-attr]  # the schedule is per optimizer step
            self._accumulate("train", loss, out, y)
        return loss.detach()

    def validation_step(self, batch: Batch | StepGroup, batch_idx: int) -> None:
        self._evaluate_batches("val", minibatches(batch))

    def test_step(self, batch: Batch | StepGroup, batch_idx: int) -> None:
        self._evaluate_batches("test", minibatches(batch))

    def _evaluate_batches(self, split: str, batches: Iterable[Batch]) -> None:
        for x, y in batches:
            loss, out = self.loss_and_outputs((x, y))
            self._accumulate(split, loss, out, y)

    def on_train_epoch_start(self) -> None:
        self._sums.pop("train", None)

    def on_validation_epoch_start(self) -> None:
        self._sums.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self._sums.pop("test", None)

    def epoch_metrics(self, splits: tuple[str, ...] = ("train", "val")) -> dict[str, float]:
        """Mean loss (and accuracy) of the last epoch per split, plus the current LR."""
        metrics: dict[str, float] = {}
        for split in splits:
            sums = self._sums.get(split)
            if not sums:
                continue
            n = sums["n"]
            metrics[f"{split}/loss"] = float(sums["loss"] / n)
            if "correct" in sums:
                metrics[f"{split}/acc"] = float(sums["correct"] / n)
        if self._trainer is not None and self.trainer.optimizers:
            metrics["lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        return metrics

    def on_train_epoch_end(self) -> None:
        # One log call per epoch, and only when asked: each `self.log` call costs about a
        # millisecond in Lightning's result collection, several optimizer steps of a small model.
        if self.log_metrics:
            self.log_dict(self.epoch_metrics(), prog_bar=False)

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch | StepGroup]) -> dict[str, float]:
        """Evaluate outside a Trainer (e.g. on the sealed test split) as `test/...` metrics."""
        was_training = self.training
        self.eval()
        self._sums.pop("test", None)
        for batch in batches:
            self._evaluate_batches("test", [(x.to(self.device), y.to(self.device)) for x, y in minibatches(batch)])
        self.train(was_training)
        return {k: v for k, v in self.epoch_metrics(("test",)).items() if k.startswith("test/")}

    def configure_optimizers(self) -> dict:
        optimizer = build_optimizer(self.parameters(), self.optimizer_cfg)
        scheduler = build_scheduler(
            optimizer, self.schedule_cfg, self.max_epochs * self.steps_per_epoch, self.steps_per_epoch
        )
        # Stepped by `training_step` after every optimizer step (optimization is manual).
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}
