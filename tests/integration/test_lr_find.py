"""`harness lr-find` on the digits MLP: a real MLflow server, the CSV + PNG on disk, the suggestion rule."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.cli import main
from tests.conftest import write_study

pytestmark = pytest.mark.slow  # end to end: real Ray, a real MLflow server, the CLI


def test_lr_find_suggests_a_sane_lr_and_saves_the_curve(
    tmp_path: Path, harness_home: Path, mlflow_server: str, capsys: pytest.CaptureFixture[str]
):
    study = write_study(tmp_path, {"name": "lr-find-digits"})
    out = tmp_path / "curve"
    assert main(["lr-find", str(study), "--tracking-uri", mlflow_server, "--out", str(out), "--steps", "200"]) == 0
    printed = capsys.readouterr().out
    assert "suggested lr:" in printed

    with (out / "lr_find.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 100  # the sweep ran most of its 200 steps before the loss diverged
    lrs = [float(r["lr"]) for r in rows]
    smoothed = [float(r["smoothed_loss"]) for r in rows]
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-7)
    assert min(smoothed) < 0.5 * smoothed[0]  # the loss fell before it blew up
    suggestion = lrs[smoothed.index(min(smoothed))] / 10  # the documented rule
    assert 1e-4 <= suggestion <= 0.1  # where Adam(W) trains this MLP well
    assert f"suggested lr: {suggestion:.3g}" in printed
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("lr-find-digits")
    [run] = client.search_runs([experiment.experiment_id], "tags.`harness.kind` = 'lr_find'")
    assert run.info.status == "FINISHED"
    assert math.isclose(run.data.metrics["lr_find/suggested_lr"], suggestion, rel_tol=1e-6)
    assert run.data.params["train.optimizer.name"] == "adamw"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"lr_find.csv", "lr_find.png", "spec.yaml"}
    assert len(client.get_metric_history(run.info.run_id, "lr_find/smoothed_loss")) == len(rows)


def test_lr_find_rejects_an_empty_range_before_anything_runs(
    tmp_path: Path, harness_home: Path, capsys: pytest.CaptureFixture[str]
):
    study = write_study(tmp_path)
    assert main(["lr-find", str(study), "--min-lr", "1", "--max-lr", "0.1"]) == 2
    assert "need 0 < min_lr < max_lr" in capsys.readouterr().err
    assert not (harness_home / "mlflow.db").exists() and not (harness_home / "lr_find").exists()
