"""The LightningModule that trains any registered network on a classification or regression task."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from lightning_modules.optim import OptimizerConfig, ScheduleConfig, build_optimizer, build_scheduler


class SupervisedModule(L.LightningModule):
    """Cross-entropy (classification) or MSE (regression) training of `net`.

    Per-epoch metrics are accumulated as on-device tensor sums and read once per epoch by
    `epoch_metrics()`: logging every step through `self.log` costs more than a small model's
    forward pass.
    """

    def __init__(
        self,
        net: nn.Module,
        task: str,
        optimizer: OptimizerConfig,
        schedule: ScheduleConfig,
        max_epochs: int,
        steps_per_epoch: int,
    ) -> None:
        super().__init__()
        self.net, self.task = net, task
        self.optimizer_cfg, self.schedule_cfg = optimizer, schedule
        self.max_epochs, self.steps_per_epoch = max_epochs, steps_per_epoch
        self._sums: dict[str, dict[str, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.task == "regression" else out

    def loss_and_outputs(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out, y) if self.task == "classification" else F.mse_loss(out, y)
        return loss, out

    def _accumulate(self, split: str, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        n = torch.tensor(float(len(y)), device=loss.device)
        sums = self._sums.setdefault(split, {})
        add = {"loss": loss.detach() * n, "n": n}
        if self.task == "classification":
            add["correct"] = (out.detach().argmax(-1) == y).sum().float()
        for key, value in add.items():
            sums[key] = sums[key] + value if key in sums else value

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, out = self.loss_and_outputs(batch)
        self._accumulate("train", loss, out, batch[1])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, out = self.loss_and_outputs(batch)
        self._accumulate("val", loss, out, batch[1])

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, out = self.loss_and_outputs(batch)
        self._accumulate("test", loss, out, batch[1])

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
        # One log call per epoch keeps the metrics visible to plain Lightning users.
        self.log_dict(self.epoch_metrics(), prog_bar=False)

    @torch.no_grad()
    def evaluate(self, batches: object) -> dict[str, float]:
        """Evaluate outside a Trainer (e.g. on the sealed test split) as `test/...` metrics."""
        was_training = self.training
        self.eval()
        self._sums.pop("test", None)
        for x, y in batches:  # type: ignore[attr-defined]
            x, y = x.to(self.device), y.to(self.device)
            loss, out = self.loss_and_outputs((x, y))
            self._accumulate("test", loss, out, y)
        self.train(was_training)
        return {k: v for k, v in self.epoch_metrics(("test",)).items() if k.startswith("test/")}

    def configure_optimizers(self) -> dict:
        optimizer = build_optimizer(self.parameters(), self.optimizer_cfg)
        scheduler = build_scheduler(
            optimizer, self.schedule_cfg, self.max_epochs * self.steps_per_epoch, self.steps_per_epoch
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
