"""One trial, flat: seed, build the datamodule and module from the resolved spec, fit, report
each epoch, checkpoint. Ray Tune calls `ray_trainable`; `harness reproduce` and the benchmarks
call `fit_trial` directly, without Ray."""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

import lightning as L
import torch

from harness.spec import StudySpec
from lightning_modules.data import ArrayDataModule
from lightning_modules.models import SupervisedModule, build_network

CHECKPOINT_FILE = "trial.ckpt"


class NonFiniteLossError(FloatingPointError):
    """The training or validation loss became NaN or infinite."""


class EpochSink(Protocol):
    def __call__(self, metrics: dict[str, Any], trainer: L.Trainer) -> None: ...


def build(spec: StudySpec) -> tuple[ArrayDataModule, SupervisedModule]:
    """The datamodule and LightningModule a resolved spec describes."""
    dm = ArrayDataModule(
        dataset=spec.data.dataset,
        split=spec.data.split,
        preprocessing=spec.data.preprocessing,
        batch_size=spec.train.batch_size,
        seed=spec.seed,
        # One Lightning batch per epoch and split; the module steps once per mini-batch in it.
        steps_per_batch=None,
    )
    dm.setup()
    net = build_network(spec.model, dm.num_features, dm.num_outputs)
    module = SupervisedModule(
        net,
        task=dm.task,
        optimizer=spec.train.optimizer,
        schedule=spec.train.schedule,
        max_epochs=spec.train.max_epochs,
        steps_per_epoch=dm.steps_per_epoch,
        # The epoch sink reads `epoch_metrics()` directly; nothing here monitors logged values.
        log_metrics=False,
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
        torch.manual_seed(epoch_seed(self.seed, trainer.current_epoch))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        metrics: dict[str, Any] = {"epoch": epoch, **pl_module.epoch_metrics()}  # type: ignore[operator]
        for key in ("train/loss", "val/loss"):
            if key in metrics and not math.isfinite(metrics[key]):
                raise NonFiniteLossError(f"{key} became {metrics[key]} at epoch {epoch}")
        self.sink(metrics, trainer)
        if self.stop_after is not None and epoch >= self.stop_after:
            trainer.should_stop = True


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
    dm, module = build(spec)
    trainer = make_trainer(spec, [EpochReporter(spec.seed, sink, stop_after)], accelerator)
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume_from) if resume_from else None)
    return module


def evaluate_checkpoint(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    """Score a trained trial on the sealed test split: the one place the test split is read."""
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_trial)))
    dm, module = build(spec)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    return module.evaluate(dm.test_dataloader())


# --- Ray Tune side -----------------------------------------------------------------------


def _ray_sink(node_id: str) -> Callable[[dict[str, Any], L.Trainer], None]:
    from ray import tune

    def report(metrics: dict[str, Any], trainer: L.Trainer) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
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
