"""Snapshot ensembles (Huang et al., 2017): with warm restarts (SGDR) each cycle ends in a
different minimum; keeping the weights at the end of every cycle and averaging the snapshots'
predictions gives an ensemble for the cost of one training run.

`SnapshotEnsemble` is a callback: at each cycle's last epoch it keeps a copy of the weights and
scores the ensemble of the last `size` snapshots on the validation split. Its metrics go
into the epoch report (`val/snapshot_ensemble/loss`, `.../acc`, `snapshot_ensemble/snapshots`) beside the
current model's `val/loss`, which at a cycle end is the last snapshot's score. The snapshots
are part of the callback state, so a checkpoint carries them and a resumed fit continues.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch

from lightning_modules.models import SupervisedModule
from lightning_modules.training.callbacks import MetricCallback

PREFIX = "snapshot_ensemble"


@torch.no_grad()
def ensemble_metrics(
    module: SupervisedModule, snapshots: list[dict[str, torch.Tensor]], x: torch.Tensor, y: torch.Tensor, split: str
) -> dict[str, float]:
    """`<split>/snapshot_ensemble/loss` (and acc) of the mean prediction of `module`'s network
    under each snapshot's weights: mean class probabilities (classification) or mean outputs."""
    current = copy.deepcopy(module.net.state_dict())
    was_training = module.training
    module.eval()
    classification = module.task == "classification"
    total = None
    x, y = x.to(module.device), y.to(module.device)
    try:
        for weights in snapshots:
            module.net.load_state_dict(weights)
            out = module(x)
            out = torch.softmax(out, dim=-1) if classification else out
            total = out if total is None else total + out
    finally:
        module.net.load_state_dict(current)
        module.train(was_training)
    mean = total / len(snapshots)  # type: ignore[operator]
    if classification:
        nll = torch.nn.functional.nll_loss(mean.clamp_min(1e-12).log().reshape(-1, mean.shape[-1]), y.reshape(-1))
        hits = (mean.argmax(-1) == y).float().mean()
        return {f"{split}/{PREFIX}/loss": float(nll), f"{split}/{PREFIX}/acc": float(hits)}
    return {f"{split}/{PREFIX}/loss": float(module.criterion(mean, y))}


class SnapshotEnsemble(MetricCallback):
    """Keep the weights at the end of each epoch in `cycle_ends` (1-based) and report the
    ensemble of the last `size` of them on the validation split."""

    def __init__(self, cycle_ends: list[int], size: int) -> None:
        self.cycle_ends, self.size = set(cycle_ends), size
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self._metrics: dict[str, float] = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs before the epoch reporter (listed first), after this epoch's validation.
        epoch = trainer.current_epoch + 1
        if epoch not in self.cycle_ends or not isinstance(pl_module, SupervisedModule):
            return
        weights = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.net.state_dict().items()}
        self.snapshots = (self.snapshots + [weights])[-self.size :]
        x, y = trainer.datamodule.split_tensors("val")  # type: ignore[attr-defined]
        self._metrics = {**ensemble_metrics(pl_module, self.snapshots, x, y, "val"), f"{PREFIX}/snapshots": float(len(self.snapshots))}

    def epoch_metrics(self) -> dict[str, float]:
        """The latest ensemble's scores (empty before the first snapshot)."""
        return dict(self._metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots, "metrics": self._metrics}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.snapshots, self._metrics = list(state_dict["snapshots"]), dict(state_dict["metrics"])


def snapshots_in(checkpoint: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The snapshots a trial checkpoint carries (none without a snapshot ensemble)."""
    for key, state in checkpoint.get("callbacks", {}).items():
        if key.startswith(SnapshotEnsemble.__name__):
            return list(state["snapshots"])
    return []
