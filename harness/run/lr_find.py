"""`harness lr-find`: the LR range test on a study's model and data, saved as CSV + PNG and
logged to MLflow as a run of the study's experiment (tag `harness.kind=lr_find`)."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from harness.errors import SpecError
from harness.paths import default_tracking_uri, harness_home
from harness.study import StudySpec
from harness.tracking import contract as c
from harness.tracking.plots import lr_range_png
from harness.tracking.runs import client_for, flatten, open_run
from harness.tracking.store import check_store
from harness.trial.kinds import TRIAL_KINDS, kind_for
from harness.trial.lr_find import LRFindSettings, sweep
from lightning_modules.optim import LRRange

CSV_FILE, PNG_FILE = "lr_find.csv", "lr_find.png"


@dataclass(frozen=True)
class LRFindOutcome:
    result: LRRange
    batch_size: int
    lr_factor: float  # effective LR / train.optimizer.lr (lr_scaling), 1 without it
    folder: Path
    run_id: str
    tracking_uri: str


def write_csv(path: Path, result: LRRange) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "lr", "loss", "smoothed_loss"])
        for i, (lr, loss, smooth) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
            writer.writerow([i, f"{lr:.8g}", f"{loss:.8g}", f"{smooth:.8g}"])
    return path


def run_lr_find(
    spec: StudySpec,
    settings: LRFindSettings | None = None,
    *,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
) -> LRFindOutcome:
    """Sweep, save CSV + PNG in `out` (default HARNESS_HOME/lr_find/<study>-<time>), log a run."""
    if not TRIAL_KINDS.get(kind_for(spec)).reads_data:
        raise SpecError(f"{spec.name}: lr-find needs a training study; this one evaluates an objective function")
    settings = settings or LRFindSettings()
    settings.check()
    tracking_uri = tracking_uri or default_tracking_uri()
    check_store(tracking_uri)
    result, batch_size, lr_factor = sweep(spec, settings)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(out) if out else harness_home() / "lr_find" / f"{spec.name}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(folder / CSV_FILE, result)
    png_path = lr_range_png(
        folder / PNG_FILE, result.lrs, result.losses, result.smoothed, result.min_loss_lr, result.suggestion,
        f"LR range test: {spec.name} (batch {batch_size}, {spec.train.optimizer.name})",
    )
    (folder / c.SPEC_ARTIFACT).write_text(spec.to_yaml())

    client = client_for(tracking_uri)
    tags = {c.SEED: str(spec.seed), c.SPEC_HASH: spec.spec_hash(), c.DIVERGED: str(result.diverged).lower()}
    run_id = open_run(tracking_uri, spec.name, c.KIND_LR_FIND, f"lr-find-{stamp}", tags).parent_run_id
    params = {k: v for k, v in flatten(spec.to_dict()).items() if not k.startswith("search.")}
    params.update({f"lr_find.{k}": v for k, v in vars(settings).items()})
    _log_batches(client, run_id, params, result)
    client.log_artifact(run_id, str(csv_path))
    client.log_artifact(run_id, str(png_path))
    client.log_artifact(run_id, str(folder / c.SPEC_ARTIFACT))
    client.set_terminated(run_id, status=c.FINISHED)
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
