"""The LightningModule that trains any registered network on a classification or regression task."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import nn

from lightning_modules.data.datamodule import Batch, StepGroup, minibatches
from lightning_modules.models.meter import EpochMeter
from lightning_modules.models.tasks import TASKS
from lightning_modules.optim import (
    OptimizerConfig,
    ScheduleConfig,
    build_optimizer,
    build_scheduler,
    is_constant,
    is_per_epoch,
)
from lightning_modules.regularizers import (
    GradientClipConfig,
    RegularizationConfig,
    build_regularizers,
    clip_gradients,
    gradient_norms,
    gradient_snapshot,
    weight_histogram,
    weight_statistics,
    weight_tensors,
)

# Samples an evaluation scores at once (its forward passes stay one per mini-batch).
EVAL_CHUNK = 1024

# Lightning hooks that run around every backward pass and optimizer step.
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


class SupervisedModule(L.LightningModule):
    """Training of `net` on a supervised task (`lightning_modules.models.tasks`: cross-entropy
    for classification, MSE for regression).

    Optimization is manual: a batch is one (x, y) mini-batch or a `StepGroup` of several, and
    the module takes one optimizer step and one LR-schedule step per mini-batch, so that
    Lightning's per-batch work is paid once per group rather than once per step.

    Per-epoch metrics are accumulated as on-device tensor sums (an `EpochMeter`) and read once
    per epoch by `epoch_metrics()`: logging every step through `self.log` costs more than a small model's
    forward pass. With `log_metrics` they are also logged once per epoch, for Lightning
    loggers and callbacks (EarlyStopping, ModelCheckpoint) that monitor them.

    Regularizers, gradient clipping and a per-step LR schedule run only when configured: a
    plain step pays for none of them. Weight statistics and per-layer gradient norms are read
    once per epoch (`training_evidence`), the gradients being those of the epoch's last step.
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
        regularization: RegularizationConfig | None = None,  # type: ignore[valid-type]
        gradient_clip: GradientClipConfig | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.task = net, task
        self.scoring = TASKS.get(task)
        self.optimizer_cfg, self.schedule_cfg = optimizer, schedule
        self.max_epochs, self.steps_per_epoch = max_epochs, steps_per_epoch
        self.log_metrics = log_metrics
        self.meter = EpochMeter()
        self._direct_steps = False
        self.regularizers = build_regularizers(regularization or RegularizationConfig(), task)
        self.gradient_clip = gradient_clip or GradientClipConfig()
        self._named_weights = weight_tensors(net)
        self._weights = [w for _, w in self._named_weights]
        self._trainable = [p for p in net.parameters() if p.requires_grad]
        # Decided once here, so that an unconfigured step tests two booleans and nothing else.
        self._gradient_hooks = bool(self.regularizers.gradient_hooks) or self.gradient_clip.max is not None
        self._step_hooks = bool(self.regularizers.step_hooks)
        self._schedule_per_step = not (is_constant(schedule) or is_per_epoch(schedule))
        self._unclipped_norm: torch.Tensor | None = None
        self._clip_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # (max norm, clipped steps) this epoch
        self._clip_steps = 0
        self._gradients: tuple[list[str], torch.Tensor] | None = None  # the epoch's last step, by weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scoring.output(self.net(x))

    def criterion(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task's loss, a mean over samples (and time steps, for per-step targets);
        classification outputs carry classes last."""
        return self.scoring.loss(out, y)

    def loss_and_outputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        out = self(x)
        return self.criterion(out, y), out

    def training_loss_and_outputs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`loss_and_outputs` with the configured batch regularizers (label smoothing, mixup,
        input noise); evaluation uses the plain loss, so validation losses stay comparable."""
        if not self.regularizers.batch_hooks:
            return self.loss_and_outputs((x, y))
        x, criterion = self.regularizers.batch(x, y, self.criterion)
        out = self(x)
        return criterion(out, y), out

    def _accumulate(self, split: str, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        # Runs after every optimizer step: `shape[0]` rather than `len`, one detach.
        out = out.detach()
        # Per-step targets: each sample counts its fraction of correct steps.
        correct = self.scoring.correct(out, y)
        # Calibration of evaluated splits only: a training step pays nothing for it.
        calibration = None if split == "train" else self.scoring.calibration(out, y)
        self.meter.add(split, loss, y.shape[0], None if correct is None else correct.sum(), calibration)

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
            if self._gradient_hooks:
                self._before_step()
            optimizer.optimizer.step()
            if self._step_hooks:
                self._after_step(optimizer.optimizer)
            optimizer._on_after_step()
        else:
            self.manual_backward(loss)
            if self._gradient_hooks:
                self._before_step()
            optimizer.step()
            if self._step_hooks:
                self._after_step(optimizer.optimizer)

    def _before_step(self) -> None:
        """Penalty gradients, then clipping: the step sees the clipped gradient of the
        regularized objective."""
        self.regularizers.gradients(self._weights)
        if self.gradient_clip.max is not None:
            norm = clip_gradients(self._trainable, self.gradient_clip)
            self._unclipped_norm = norm
            if norm is not None:
                # The epoch's largest norm and how many steps were clipped, kept as tensors: no sync per step.
                clipped = (norm > self.gradient_clip.max).float()
                peak, count = self._clip_stats or (norm.detach(), clipped.new_zeros(()))
                self._clip_stats = (torch.maximum(peak, norm.detach()), count + clipped)
                self._clip_steps += 1

    def _after_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.regularizers.after_step(self._weights, optimizer.param_groups[0]["lr"])

    def manual_step(self, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One regularized training step with a plain torch optimizer, outside a Trainer (the LR
        range test, notebooks); returns the detached loss."""
        self.train()
        loss, _ = self.training_loss_and_outputs(x, y)
        optimizer.zero_grad()
        loss.backward()
        if self._gradient_hooks:
            self._before_step()
        optimizer.step()
        if self._step_hooks:
            self._after_step(optimizer)
        return loss.detach()

    def training_step(self, batch: Batch | StepGroup, batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers() if self._schedule_per_step else None
        assert isinstance(optimizer, LightningOptimizer)
        for x, y in minibatches(batch):
            loss, out = self.training_loss_and_outputs(x, y)
            optimizer.zero_grad()
            self._backward_and_step(optimizer, loss)
            if scheduler is not None:
                scheduler.step()  # type: ignore[union-attr]  # the schedule is per optimizer step
            self._accumulate("train", loss, out, y)
        return loss.detach()

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # A StepGroup's tensors are moved one by one: Lightning's generic walk of the nested list
        # costs about 0.2 ms per group on CPU, where each move is a no-op.
        if isinstance(batch, StepGroup):
            # A group's tensors are slices of the same two tensors: where the first pair is on
            # the device already, all are.
            if batch and batch[0][0].device == device and batch[0][1].device == device:
                return batch
            return StepGroup((x.to(device), y.to(device)) for x, y in batch)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def validation_step(self, batch: Batch | StepGroup, batch_idx: int) -> None:
        self._evaluate_batches("val", minibatches(batch))

    def test_step(self, batch: Batch | StepGroup, batch_idx: int) -> None:
        self._evaluate_batches("test", minibatches(batch))

    def _evaluate_batches(self, split: str, batches: Iterable[Batch]) -> None:
        # A forward pass per mini-batch, then the loss and scores once per chunk of up to
        # EVAL_CHUNK samples: scoring a batch (loss, accuracy, calibration bins) is a dozen small
        # tensor ops, more than a small model's forward pass. The loss of the chunk equals the
        # sample-weighted mean of its batches' losses.
        outs: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        samples = 0
        for x, y in batches:
            outs.append(self(x))
            targets.append(y)
            samples += y.shape[0]
            if samples >= EVAL_CHUNK:
                self._score(split, outs, targets)
                outs, targets, samples = [], [], 0
        if outs:
            self._score(split, outs, targets)

    def _score(self, split: str, outs: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        y = targets[0] if len(targets) == 1 else torch.cat(targets)
        self._accumulate(split, self.criterion(out, y), out, y)

    def on_train_epoch_start(self) -> None:
        self.meter.reset("train")
        self._gradients = None
        self._clip_stats, self._clip_steps = None, 0

    def on_validation_model_zero_grad(self) -> None:
        # Lightning clears the gradients before validating; keep the last step's norms first.
        self._gradients = gradient_snapshot(self._named_weights)
        super().on_validation_model_zero_grad()

    def on_validation_epoch_start(self) -> None:
        self.meter.reset("val")

    def on_test_epoch_start(self) -> None:
        self.meter.reset("test")

    def on_validation_epoch_end(self) -> None:
        # A per-epoch schedule (reduce on plateau) follows the validation loss of the fit.
        if not is_per_epoch(self.schedule_cfg) or self.trainer.sanity_checking or self.trainer.state.fn != "fit":
            return
        if self.meter.has("val"):
            self.lr_schedulers().step(self.meter.means("val")["loss"])  # type: ignore[union-attr]

    def epoch_metrics(self, splits: tuple[str, ...] = ("train", "val")) -> dict[str, float]:
        """Mean loss (and accuracy) of the last epoch per split, plus the current LR."""
        metrics: dict[str, float] = {}
        for split in splits:
            metrics.update({f"{split}/{name}": value for name, value in self.meter.means(split).items()})
        if "train" in splits and self.meter.has("train"):
            metrics.update(self.training_evidence())
        if self._trainer is not None and self.trainer.optimizers:
            metrics["lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        return metrics

    def training_evidence(self) -> dict[str, float]:
        """`weights/mean_abs`, `weights/zero_frac`, `weights/norm` over the weight tensors and
        `grad_norm/<weight>` of the last step's gradients (after penalties and clipping);
        `grad_norm/unclipped` is the global norm that clipping by norm saw on that step,
        `grad_norm/unclipped_max` the largest over the epoch's steps and `grad_clip/fraction`
        the share of its steps that were clipped."""
        metrics = weight_statistics(self._weights)
        metrics.update(gradient_norms(self._gradients or gradient_snapshot(self._named_weights)))
        if self._unclipped_norm is not None:
            metrics["grad_norm/unclipped"] = float(self._unclipped_norm)
        if self._clip_stats is not None and self._clip_steps:
            peak, count = self._clip_stats
            metrics["grad_norm/unclipped_max"] = float(peak)
            metrics["grad_clip/fraction"] = float(count) / self._clip_steps
        return metrics

    def weight_histogram(self, bins: int = 41) -> dict[str, list[float]]:
        """Bin edges and counts of all weight-tensor entries."""
        return weight_histogram(self._weights, bins)

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
        self.meter.reset("test")
        for batch in batches:
            self._evaluate_batches("test", [(x.to(self.device), y.to(self.device)) for x, y in minibatches(batch)])
        self.train(was_training)
        return {k: v for k, v in self.epoch_metrics(("test",)).items() if k.startswith("test/")}

    @torch.no_grad()
    def sample_metrics(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> dict[str, torch.Tensor]:
        """Each sample's loss and, for classification, its fraction of correct predictions (per-step
        targets averaged over steps), in eval mode: for scores by group, such as per operating
        regime. Their means over all samples are the `evaluate` metrics."""
        was_training = self.training
        self.eval()
        losses, correct = [], []
        for start in range(0, len(x), chunk):
            xs, ys = x[start : start + chunk].to(self.device), y[start : start + chunk].to(self.device)
            out = self(xs)
            losses.append(self.scoring.sample_losses(out, ys))
            hits = self.scoring.correct(out, ys)
            if hits is not None:
                correct.append(hits)
        self.train(was_training)
        metrics = {"loss": torch.cat(losses)}
        if correct:
            metrics["correct"] = torch.cat(correct)
        return metrics

    def configure_optimizers(self) -> dict:
        optimizer = build_optimizer(self.parameters(), self.optimizer_cfg)
        scheduler = build_scheduler(
            optimizer, self.schedule_cfg, self.max_epochs * self.steps_per_epoch, self.steps_per_epoch
        )
        # Stepped by `training_step` after every optimizer step (optimization is manual).
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}
