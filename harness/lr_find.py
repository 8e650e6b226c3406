"""`harness lr-find`: the LR range test on a study's model and data, saved as CSV + PNG and
logged to MLflow as a run of the study's experiment (tag `harness.kind=lr_find`)."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

import harness
from harness.errors import SpecError
from harness.paths import default_artifact_root, default_tracking_uri, harness_home
from harness.plots import lr_range_png
from harness.spec import StudySpec
from harness.tracking import client_for, ensure_experiment, flatten, git_commit
from lightning_modules.data import ArrayDataModule, TensorBatches
from lightning_modules.optim import LRRange, build_optimizer, lr_range_test

CSV_FILE, PNG_FILE = "lr_find.csv", "lr_find.png"


@dataclass(frozen=True)
class LRFindSettings:
    min_lr: float = 1e-7
    max_lr: float = 10.0
    num_steps: int = 300
    smoothing: float = 0.9
    diverge_factor: float = 4.0

    def check(self) -> None:
        """Raise SpecError on settings the sweep cannot run with (before anything is written)."""
        if not 0 < self.min_lr < self.max_lr:
            raise SpecError(f"--min-lr / --max-lr: need 0 < min_lr < max_lr (given {self.min_lr}, {self.max_lr})")
        if self.num_steps < 10:
            raise SpecError(f"--steps: need at least 10 steps (given {self.num_steps})")


@dataclass(frozen=True)
class LRFindOutcome:
    result: LRRange
    batch_size: int
    lr_factor: float  # effective LR / train.optimizer.lr (lr_scaling), 1 without it
    folder: Path
    run_id: str
    tracking_uri: str


def _endless(dm: ArrayDataModule) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Train mini-batches, reshuffled on every pass, for as many steps as the sweep takes."""
    x, y = dm.split_tensors("train")
    while True:
        yield from TensorBatches(x, y, dm.batch_size, shuffle=True)


def sweep(spec: StudySpec, settings: LRFindSettings) -> tuple[LRRange, int, float]:
    """Run the range test on a fresh model of `spec` with its optimizer and regularizers
    (the schedule is replaced by the sweep). Returns (result, batch size, lr factor)."""
    from harness.trial import build

    L.seed_everything(spec.seed, verbose=False)
    torch.set_num_threads(max(1, int(spec.resources.cpus_per_trial)))
    dm, module = build(spec)
    optimizer = build_optimizer(module.parameters(), module.optimizer_cfg)
    batches = _endless(dm)

    def step(lr: float) -> float:
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        return float(module.manual_step(x, y, optimizer))

    result = lr_range_test(
        step,
        min_lr=settings.min_lr,
        max_lr=settings.max_lr,
        num_steps=settings.num_steps,
        smoothing=settings.smoothing,
        diverge_factor=settings.diverge_factor,
    )
    return result, dm.batch_size, module.optimizer_cfg.lr / spec.train.optimizer.lr


def write_csv(path: Path, result: LRRange) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "lr", "loss", "smoothed_loss"])
        for i, (lr, loss, smooth) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
            writer.writerow([i, f"{lr:.8g}", f"{loss:.8g}", f"{smooth:.8g}"])
    return path


def run_lr_find(
    spec: StudySpec,
    settings: LRFindSettings = LRFindSettings(),
    *,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
) -> LRFindOutcome:
    """Sweep, save CSV + PNG in `out` (default HARNESS_HOME/lr_find/<study>-<time>), log a run."""
    if spec.objective is not None:
        raise SpecError(f"{spec.name}: lr-find needs a training study; this one evaluates an objective function")
    settings.check()
    result, batch_size, lr_factor = sweep(spec, settings)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(out) if out else harness_home() / "lr_find" / f"{spec.name}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(folder / CSV_FILE, result)
    png_path = lr_range_png(
        folder / PNG_FILE, result.lrs, result.losses, result.smoothed, result.min_loss_lr, result.suggestion,
        f"LR range test: {spec.name} (batch {batch_size}, {spec.train.optimizer.name})",
    )
    (folder / "spec.yaml").write_text(spec.to_yaml())

    tracking_uri = tracking_uri or default_tracking_uri()
    local_store = tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri
    client = client_for(tracking_uri)
    experiment_id = ensure_experiment(client, spec.name, default_artifact_root() if local_store else None)
    run = client.create_run(
        experiment_id,
        run_name=f"lr-find-{stamp}",
        tags={
            "harness.kind": "lr_find",
            "seed": str(spec.seed),
            "spec_hash": spec.spec_hash(),
            "git_commit": git_commit(),
            "harness_version": harness.__version__,
            "diverged": str(result.diverged).lower(),
        },
    )
    run_id = run.info.run_id
    params = {k: v for k, v in flatten(spec.to_dict()).items() if not k.startswith("search.")}
    params.update({f"lr_find.{k}": v for k, v in vars(settings).items()})
    _log_batches(client, run_id, params, result)
    client.log_artifact(run_id, str(csv_path))
    client.log_artifact(run_id, str(png_path))
    client.log_artifact(run_id, str(folder / "spec.yaml"))
    client.set_terminated(run_id)
    return LRFindOutcome(result, batch_size, lr_factor, folder, run_id, tracking_uri)


def _log_batches(client: MlflowClient, run_id: str, params: dict[str, object], result: LRRange) -> None:
    """Params, the two summary LRs, and the curve as per-step metrics (step = sweep step)."""
    now = int(time.time() * 1000)
    metrics = [
        Metric("lr_find/suggested_lr", result.suggestion, now, 0),
        Metric("lr_find/min_loss_lr", result.min_loss_lr, now, 0),
    ]
    for i, (lr, loss, smooth) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
        metrics += [
            Metric("lr_find/lr", lr, now, i),
            Metric("lr_find/loss", loss, now, i),
            Metric("lr_find/smoothed_loss", smooth, now, i),
        ]
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    # MLflow takes at most 100 params and 1000 metrics per batch.
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100], synchronous=True)
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000], synchronous=True)
