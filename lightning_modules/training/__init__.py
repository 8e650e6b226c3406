"""Plain Lightning training: the trainer a trial uses, its per-epoch callbacks and the scores
beyond a module's own metrics. Usable in a notebook with no harness import:

    dm, module = ..., SupervisedModule(...)
    fit_module(module, dm, seed=0, max_epochs=10, sink=lambda metrics, trainer: print(metrics))
"""

from lightning_modules.training.callbacks import (
    EpochReporter,
    EpochSink,
    MetricCallback,
    NonFiniteLossError,
    SpecOnRestore,
    epoch_seed,
)
from lightning_modules.training.fit import fit_module, make_trainer, quiet_lightning
from lightning_modules.training.metrics import data_metrics, regime_metrics
from lightning_modules.training.snapshots import SnapshotEnsemble, ensemble_metrics, snapshots_in

__all__ = [
    "EpochReporter",
    "EpochSink",
    "MetricCallback",
    "NonFiniteLossError",
    "SnapshotEnsemble",
    "SpecOnRestore",
    "data_metrics",
    "ensemble_metrics",
    "epoch_seed",
    "fit_module",
    "make_trainer",
    "quiet_lightning",
    "regime_metrics",
    "snapshots_in",
]
