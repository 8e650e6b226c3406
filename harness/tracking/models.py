"""Models as MLflow models (pytorch flavour) in a run's `model` artifact: a study's best model
on its parent run, a compression study's teacher. `mlflow.pytorch.load_model("runs:/RUN_ID/model")`
loads them anywhere, and `compress.teacher: {run: RUN_ID}` starts from them."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.tracking import contract as c


def log_model(client: Any, run_id: str, net: Any) -> None:
    """Log the network `net` (a torch module) as run `run_id`'s MLflow model."""
    import mlflow.pytorch
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / c.MODEL_ARTIFACT
        # Pinned requirements: inferring them imports every installed package (seconds).
        requirement = f"torch=={torch.__version__.split('+')[0]}"
        # Pickled, not `pt2`: a traced graph loads back without its layers as modules, and
        # compression prunes and quantizes layer by layer.
        with _quiet_pickle_warning():
            mlflow.pytorch.save_model(
                net.cpu().eval(), str(local), pip_requirements=[requirement], serialization_format="pickle"
            )
        client.log_artifacts(run_id, str(local), c.MODEL_ARTIFACT)


@contextlib.contextmanager
def _quiet_pickle_warning() -> Iterator[None]:
    # MLflow warns on every pickled save; the choice is deliberate (see above).
    logger = logging.getLogger("mlflow.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def has_model(client: Any, run_id: str) -> bool:
    return c.MODEL_ARTIFACT in {a.path for a in client.list_artifacts(run_id)}


def load_model(tracking_uri: str, run_id: str) -> Any:
    """Run `run_id`'s MLflow model, on CPU, in eval mode."""
    import mlflow
    import mlflow.pytorch

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pytorch.load_model(f"runs:/{run_id}/{c.MODEL_ARTIFACT}", map_location="cpu").eval()
