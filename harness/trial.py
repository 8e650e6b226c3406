"""One trial, flat: seed, build the datamodule and module from the resolved spec, fit, report
each epoch, checkpoint. Ray Tune calls `ray_trainable`; `harness reproduce` and the benchmarks
call `fit_trial` directly, without Ray."""

from __future__ import annotations

import json
import logging
import math
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch

from harness.evaluation import data_metrics, regime_metrics
from harness.spec import StudySpec
from lightning_modules.data import ArrayDataModule
from lightning_modules.models import SupervisedModule, build_network
from lightning_modules.regularizers import EarlyStopping

CHECKPOINT_FILE = "trial.ckpt"
# Saved beside each checkpoint; the driver logs the last one as the trial's artifact.
HISTOGRAM_FILE = "weights_histogram.json"


class NonFiniteLossError(FloatingPointError):
    """The training or validation loss became NaN or infinite."""


class EpochSink(Protocol):
    def __call__(self, metrics: dict[str, Any], trainer: L.Trainer) -> None: ...


def datamodule(spec: StudySpec, fold: int = 0) -> ArrayDataModule:
    """The spec's datamodule (of fold `fold` under k-fold), set up, with `batch_size: full`
    resolved to the train split's size."""
    full_batch = spec.train.batch_size == "full"
    dm = ArrayDataModule(
        dataset=spec.data.dataset,
        split=spec.data.split,
        preprocessing=spec.data.preprocessing,
        batch_size=1 if full_batch else spec.train.batch_size,  # type: ignore[arg-type]
        seed=spec.seed,
        # One Lightning batch per epoch and split; the module steps once per mini-batch in it.
        steps_per_batch=None,
        leak=spec.data.leak,
        fold=fold,
    )
    dm.setup()
    if full_batch:
        dm.batch_size = dm.num_train  # batch gradient descent: one step per epoch
    return dm


def build(spec: StudySpec, fold: int = 0) -> tuple[ArrayDataModule, SupervisedModule]:
    """The datamodule and LightningModule a resolved spec describes (for fold `fold` of k-fold)."""
    dm = datamodule(spec, fold)
    net = build_network(spec.model, dm.shape)
    module = SupervisedModule(
        net,
        task=dm.task,
        optimizer=spec.train.optimizer.for_batch_size(dm.batch_size),
        schedule=spec.train.schedule,
        max_epochs=spec.train.max_epochs,
        steps_per_epoch=dm.steps_per_epoch,
        # The epoch sink reads `epoch_metrics()` directly; nothing here monitors logged values.
        log_metrics=False,
        regularization=spec.train.regularization,
        gradient_clip=spec.train.gradient_clip,
    )
    return dm, module


def epoch_seed(seed: int, epoch: int) -> int:
    # Reseeding per epoch makes epoch k depend only on (spec, weights after k-1), so a trial
    # resumed from a checkpoint follows the same path as one that never stopped.
    return (seed * 1_000_003 + epoch) % (2**63)


class EpochReporter(L.Callback):
    """Hands each finished epoch's metrics to a sink; fails the trial on a non-finite loss."""

    def __init__(self, seed: int, sink: EpochSink, stop_after: int | None = None) -> None:
        self.seed, self.sink, self.stop_after = seed, sink, stop_after

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seed = epoch_seed(self.seed, trainer.current_epoch)
        # Only the generators this trial draws from: `torch.manual_seed` also queues lazy
        # seeding of every accelerator backend, recording the call stack, which costs more than
        # an optimizer step of a small model deep inside Lightning's loop.
        torch.default_generator.manual_seed(seed)
        if pl_module.device.type == "cuda":
            torch.cuda.manual_seed(seed)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        metrics: dict[str, Any] = {"epoch": epoch, **pl_module.epoch_metrics()}  # type: ignore[operator]
        metrics.update(data_metrics(trainer, pl_module))  # per-regime val scores, outlier counts
        for key in ("train/loss", "val/loss"):
            if key in metrics and not math.isfinite(metrics[key]):
                raise NonFiniteLossError(f"{key} became {metrics[key]} at epoch {epoch}")
        # Early stopping decides after this epoch's validation, which runs before this hook.
        reasons = [cb.reason for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]  # type: ignore[attr-defined]
        if any(reasons):
            metrics["stop_reason"] = next(r for r in reasons if r)
        self.sink(metrics, trainer)
        if self.stop_after is not None and epoch >= self.stop_after:
            trainer.should_stop = True


class SpecOnRestore(L.Callback):
    """After a checkpoint restore, the optimizer and LR schedule take the resolved spec's
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


def quiet_lightning() -> None:
    """Keep Lightning's per-fit banners and tips out of study output."""
    warnings.filterwarnings("ignore", module="lightning")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_trainer(spec: StudySpec, callbacks: list[L.Callback], accelerator: str = "cpu") -> L.Trainer:
    """A Trainer with the per-step extras off: no logger, progress bar, summary or sanity run.

    Checkpoints are written by the epoch sink, where Ray Tune needs them.
    """
    return L.Trainer(
        max_epochs=spec.train.max_epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )


def fit_trial(
    spec: StudySpec,
    sink: EpochSink,
    *,
    resume_from: Path | None = None,
    stop_after: int | None = None,
    accelerator: str = "cpu",
) -> SupervisedModule:
    """Train one resolved spec, calling `sink(metrics, trainer)` after every epoch."""
    quiet_lightning()
    L.seed_everything(spec.seed, workers=True, verbose=False)
    # Pin the thread count to the trial's CPUs: oversubscribed cores slow every trial, and a
    # fixed count keeps floating-point reductions identical for `harness reproduce`.
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_trial)))
    if spec.data.split.kind == "kfold":  # one model per fold; returns fold 0's
        from harness.folds import fit_folds

        return fit_folds(spec, sink, resume_from=resume_from, stop_after=stop_after, accelerator=accelerator)[0]
    dm, module = build(spec)
    callbacks: list[L.Callback] = [EpochReporter(spec.seed, sink, stop_after)]
    if spec.train.early_stopping.patience is not None:
        callbacks.append(EarlyStopping(spec.train.early_stopping))
    if resume_from is not None:
        callbacks.append(SpecOnRestore())
    trainer = make_trainer(spec, callbacks, accelerator)
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None)
    return module


def evaluate_checkpoint(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    """Score a trained trial on the sealed test split: the one place the test split is read."""
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_trial)))
    if spec.data.split.kind == "kfold":  # every fold's model, mean and std
        from harness.folds import evaluate_folds

        return evaluate_folds(spec, checkpoint)
    dm, module = build(spec)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    return {**module.evaluate(dm.test_dataloader()), **regime_metrics(module, dm, "test")}


# --- Ray Tune side -----------------------------------------------------------------------


def _ray_sink(node_id: str) -> Callable[[dict[str, Any], L.Trainer], None]:
    from ray import tune

    def report(metrics: dict[str, Any], trainer: L.Trainer) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
            histogram = trainer.lightning_module.weight_histogram()  # type: ignore[operator]
            (Path(tmp) / HISTOGRAM_FILE).write_text(json.dumps(histogram))
            where = {"node_id": node_id, "device": str(trainer.strategy.root_device)}
            tune.report({**metrics, **where}, checkpoint=tune.Checkpoint.from_directory(tmp))

    return report


def ray_trainable(config: dict[str, Any], base_spec: dict[str, Any]) -> None:
    """Ray Tune function trainable: `config` holds the sampled values by dotted path."""
    import ray
    from ray import tune

    spec = StudySpec.model_validate(base_spec).with_values(config)
    accelerator = "gpu" if ray.get_gpu_ids() else "cpu"
    sink = _ray_sink(ray.get_runtime_context().get_node_id())
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        fit_trial(spec, sink, accelerator=accelerator)
        return
    with checkpoint.as_directory() as folder:
        fit_trial(spec, sink, resume_from=Path(folder) / CHECKPOINT_FILE, accelerator=accelerator)
