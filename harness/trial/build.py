"""The datamodule and LightningModule a resolved study spec describes."""

from __future__ import annotations

from harness.study import StudySpec
from lightning_modules.data import ArrayDataModule
from lightning_modules.models import SupervisedModule, build_network


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


def threads(spec: StudySpec) -> int:
    # Pin the thread count to the trial's CPUs: oversubscribed cores slow every trial, and a
    # fixed count keeps floating-point reductions identical for `harness reproduce`.
    return max(1, int(spec.resources.cpus_per_trial))
