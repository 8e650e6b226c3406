"""Shared fixtures: a real `mlflow server` on a free loopback port, tiny study files, the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HARNESS = [sys.executable, "-m", "harness.cli"]

TINY_STUDY = {
    "name": "tiny",
    "seed": 0,
    "data": {"dataset": "digits", "split": {"kind": "stratified", "val": 0.2, "test": 0.2}},
    "model": {"kind": "mlp", "hidden": [16]},
    "train": {"max_epochs": 3, "batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.01}},
    "search": {
        "strategy": "random",
        "num_trials": 3,
        "metric": "val/loss",
        "mode": "min",
        "space": {"train.optimizer.lr": {"loguniform": [0.001, 0.05]}, "model.hidden": {"choice": [[8], [16]]}},
    },
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(root: Path, port: int) -> tuple[subprocess.Popen, str]:
    """A real MLflow tracking server subprocess on 127.0.0.1:`port` with its store in `root`
    (started again on the same `root`, it serves the same runs); returns it and its URI once
    it answers."""
    root.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [
            str(mlflow), "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root", (root / "artifacts").as_uri(),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=open(root / "server.log", "a"),
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, uri
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)


def stop_mlflow_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real MLflow tracking server subprocess on 127.0.0.1; yields its URI."""
    proc, uri = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), free_port())
    yield uri
    stop_mlflow_server(proc)


@pytest.fixture
def harness_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own local store and Ray results folder."""
    home = tmp_path / "harness-runs"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


def write_study(folder: Path, overrides: dict | None = None, name: str = "study.yaml") -> Path:
    """A tiny study file; `overrides` are merged one level deep into TINY_STUDY."""
    spec = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_STUDY.items()}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key].update(value)
        else:
            spec[key] = value
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `harness ARGS` in a fresh process, as a user would."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [*HARNESS, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )
