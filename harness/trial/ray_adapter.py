"""Ray Tune side of a training trial: the function trainable and the sink that reports each
epoch with a checkpoint. Workers import this module; it writes nothing to MLflow."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L

from harness.study import StudySpec
from harness.tracking import contract as c

CHECKPOINT_FILE = "trial.ckpt"
# Saved beside each checkpoint; the driver logs the last one as the trial's artifact.
HISTOGRAM_FILE = c.WEIGHTS_HISTOGRAM_JSON


def _ray_sink(node_id: str) -> Callable[[dict[str, Any], L.Trainer], None]:
    from ray import tune

    def report(metrics: dict[str, Any], trainer: L.Trainer) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save_checkpoint(Path(tmp) / CHECKPOINT_FILE)
            histogram = trainer.lightning_module.weight_histogram()  # type: ignore[operator]
            (Path(tmp) / HISTOGRAM_FILE).write_text(json.dumps(histogram))
            where = {c.NODE_ID: node_id, c.DEVICE: str(trainer.strategy.root_device)}
            tune.report({**metrics, **where}, checkpoint=tune.Checkpoint.from_directory(tmp))

    return report


def ray_trainable(config: dict[str, Any], base_spec: dict[str, Any], fit: Callable[..., Any]) -> None:
    """Ray Tune function trainable of a training kind whose `fit` trains one resolved spec:
    `config` holds the sampled values by dotted path; a restored trial (resume, PBT) continues
    from its checkpoint."""
    import ray
    from ray import tune

    spec = StudySpec.model_validate(base_spec).with_values(config)
    accelerator = "gpu" if ray.get_gpu_ids() else "cpu"
    sink = _ray_sink(ray.get_runtime_context().get_node_id())
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
