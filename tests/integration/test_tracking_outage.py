"""The tracking server goes away mid-study and comes back: the search does not wait for it and
nothing is missing at the end. With MLflow's client retries off, every write made during the
outage fails at once, so this exercises the worst case: the writer process drops them (with a
warning) and the study's end writes them again from what Ray Tune recorded."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import HARNESS, ROOT, free_port, start_mlflow_server, stop_mlflow_server, write_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TRIALS, EPOCHS = 12, 40


def test_tracking_outage_mid_study_loses_nothing(harness_home: Path, tmp_path: Path) -> None:
    root, port = tmp_path / "server", free_port()
    server, uri = start_mlflow_server(root, port)
    study = write_study(tmp_path, {"name": "outage", "train": {"max_epochs": EPOCHS, "batch_size": 16},
                                   "search": {"num_trials": TRIALS, "max_concurrent_trials": 1}})  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    proc = subprocess.Popen([*HARNESS, "run", str(study), "--tracking-uri", uri], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the first trial has ended: the server goes away
            lines.append(line)
            if "trials 1/" in line:
                break
        stop_mlflow_server(server)
        for line in proc.stdout:  # trials go on; a write fails (and is dropped, with a warning)
            lines.append(line)
            if "an MLflow write failed" in line:
                break
        server, _ = start_mlflow_server(root, port)  # the same store, the same address
        out, _ = proc.communicate(timeout=300)
        lines.append(out)
        output = "".join(lines)
        assert proc.returncode == 0, output[-3000:]
        assert "an MLflow write failed" in output  # the outage did reach the writes
        assert f"trials {TRIALS}/{TRIALS}" in output.split("an MLflow write failed")[-1]  # trials ended after it

        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("outage").experiment_id], max_results=1000)
        (parent,) = [r for r in runs if r.data.tags.get("harness.kind") == "study"]
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert parent.info.status == "FINISHED"
        assert len(trials) == TRIALS and all(r.info.status == "FINISHED" for r in trials)
        for trial in trials:
            steps = [m.step for m in client.get_metric_history(trial.info.run_id, "val/loss")]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), steps
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_mlflow_server(server)
