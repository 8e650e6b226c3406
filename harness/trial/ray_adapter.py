"""Ray Tune side of a training trial: the function trainable and the sink that reports each
epoch, with a checkpoint when one is due (`harness.trial.checkpoints`). Workers import this module; it writes nothing to
MLflow."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L

from harness.study import StudySpec
from harness.tracking import contract as c
from harness.trial.checkpoints import CheckpointCadence, cadence_for
from harness.trial.retries import refuse_a_retry_of_an_error
from lightning_modules.training import EpochSink

CHECKPOINT_FILE = "trial.ckpt"
# Saved beside each checkpoint; the driver logs the last one as the trial's artifact.
HISTOGRAM_FILE = c.WEIGHTS_HISTOGRAM_JSON
# report(metrics, checkpoint folder or None): `tune.report` in a Ray trial.
Report = Callable[[dict[str, Any], Path | None], None]


def write_checkpoint(trainer: L.Trainer, folder: Path) -> None:
    """A trial's checkpoint: Lightning's (weights, optimizer, schedule, loop and callback state:
    what an exact continuation needs) and the weight histogram the driver logs from the last."""
    trainer.save_checkpoint(folder / CHECKPOINT_FILE)
    histogram = trainer.lightning_module.weight_histogram()  # type: ignore[operator]
    (folder / HISTOGRAM_FILE).write_text(json.dumps(histogram))


def checkpointing_sink(cadence: CheckpointCadence, report: Report, where: dict[str, Any]) -> EpochSink:
    """An epoch sink that reports every epoch (with `where` the trial runs and its device) and
    hands `report` a checkpoint folder when `cadence` says one is due (else None)."""

    def sink(metrics: dict[str, Any], trainer: L.Trainer) -> None:
        metrics = {**metrics, **where, c.DEVICE: str(trainer.strategy.root_device)}
        if not cadence.due(metrics):
            report(metrics, None)
            return
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            write_checkpoint(trainer, Path(tmp))
            report(metrics, Path(tmp))
        cadence.written(started)

    return sink


def _tune_report(metrics: dict[str, Any], folder: Path | None) -> None:
    from ray import tune

    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder is not None else None)


def ray_trainable(config: dict[str, Any], base_spec: dict[str, Any], fit: Callable[..., Any]) -> None:
    """Ray Tune function trainable of a training kind whose `fit` trains one resolved spec:
    `config` holds the sampled values by dotted path; a restored trial (resume, PBT) continues
    from its checkpoint."""
    import ray
    from ray import tune

    refuse_a_retry_of_an_error()
    spec = StudySpec.model_validate(base_spec).with_values(config)
    accelerator = "gpu" if ray.get_gpu_ids() else "cpu"
    sink = checkpointing_sink(cadence_for(spec), _tune_report, {c.NODE_ID: ray.get_runtime_context().get_node_id()})
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        fit(spec, sink, accelerator=accelerator)
        return
    with checkpoint.as_directory() as folder:
        fit(spec, sink, resume_from=Path(folder) / CHECKPOINT_FILE, accelerator=accelerator)


def training_trainable(fit: Callable[..., Any]) -> Callable[[StudySpec], Any]:
    """The Ray Tune trainable of a spec for a training kind (`training`, `kfold`) whose `fit`
    (a module-level function, pickled by reference) trains one resolved spec."""

    def trainable(spec: StudySpec, **_: Any) -> Any:
        from ray import tune

        return tune.with_parameters(ray_trainable, base_spec=spec.to_dict(), fit=fit)

    return trainable


def checkpoint_file(folder: Path) -> Path:
    return Path(folder) / CHECKPOINT_FILE
