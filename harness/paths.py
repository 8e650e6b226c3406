"""Default locations: everything under one folder, `$HARNESS_HOME` or ./harness-runs."""

from __future__ import annotations

import os
from pathlib import Path


def harness_home() -> Path:
    return Path(os.environ.get("HARNESS_HOME", "harness-runs")).resolve()


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else a local SQLite store (no server needed)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    # The folder is created (and checked writable) by `harness.tracking.store.check_store`.
    return f"sqlite:///{harness_home() / 'mlflow.db'}"


def default_artifact_root() -> Path:
    return harness_home() / "artifacts"


def default_storage() -> Path:
    return harness_home() / "ray"
