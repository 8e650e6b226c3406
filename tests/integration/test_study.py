"""A real study end to end: local Ray, a real MLflow server, Lightning trials, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli, write_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, a real MLflow server, the CLI

GRID = {
    "name": "grid-study",
    "search": {
        "strategy": "grid",
        "space": {
            # 1e12 makes SGD diverge to NaN: those trials must be FAILED with the reason, the rest go on.
            "train.optimizer.lr": {"grid": [0.05, 0.2, 1.0e12]},
            "model.hidden": {"grid": [[8], [16]]},
        },
    },
    "train": {"max_epochs": 3, "batch_size": 128, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}},
}


def children(client: MlflowClient, parent_id: str) -> list:
    experiment_id = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def parent_runs(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'study'")


@pytest.fixture(scope="module")
def grid_study(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("grid")
    study = write_study(folder, GRID)
    result = run_cli(
        "run", str(study), "--tracking-uri", mlflow_server, "--storage", str(folder / "ray"), "--quiet",
        env={"HARNESS_HOME": str(folder / "home")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    (parent,) = parent_runs(client, "grid-study")
    return client, parent, result


def test_parent_run_layout(grid_study):
    client, parent, result = grid_study
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["strategy"] == "grid" and tags["seed"] == "0" and len(tags["spec_hash"]) == 16
    assert tags["git_commit"] and tags["harness_version"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.yaml", "environment.txt", "report.json"} <= artifacts
    lock = Path(client.download_artifacts(parent.info.run_id, "environment.txt")).read_text()
    assert "torch==" in lock and "ray==" in lock
    # The chosen configuration is scored on the sealed test split, on the parent only.
    assert 0.0 < parent.data.metrics["test/acc"] <= 1.0 and "test/loss" in parent.data.metrics
    assert tags["trials_failed"] == "2"
    assert "chosen config on the sealed test split" in result.stdout


def test_one_child_per_trial_with_params_and_curves(grid_study):
    client, parent, _ = grid_study
    runs = children(client, parent.info.run_id)
    assert len(runs) == 6 and len({r.data.tags["trial_id"] for r in runs}) == 6
    grid = {(r.data.params["train.optimizer.lr"], r.data.params["model.hidden"]) for r in runs}
    assert grid == {(lr, h) for lr in ("0.05", "0.2", "1000000000000.0") for h in ("[8]", "[16]")}
    for run in runs:
        assert "test/loss" not in run.data.metrics  # trials never see the test split
        spec_text = Path(client.download_artifacts(run.info.run_id, "trial_spec.yaml")).read_text()
        assert f"lr: {float(run.data.params['train.optimizer.lr'])}" in spec_text
        if run.data.params["train.optimizer.lr"] == "1000000000000.0":
            continue
        assert run.info.status == "FINISHED" and run.data.tags["stop_reason"] == "completed 3/3 epochs"
        for key in ("train/loss", "val/loss", "val/acc", "lr"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == [1, 2, 3], key
        assert run.data.tags["device"] == "cpu" and run.data.tags["node_id"]


def test_diverging_trials_are_failed_with_reason(grid_study):
    client, parent, result = grid_study
    failed = [r for r in children(client, parent.info.run_id) if r.info.status == "FAILED"]
    assert len(failed) == 2
    for run in failed:
        assert run.data.params["train.optimizer.lr"] == "1000000000000.0"
        assert "NonFiniteLossError" in run.data.tags["stop_reason"]
        assert "became nan" in run.data.tags["stop_reason"]
        # Its own error: Ray Tune's retry was refused before it trained anything.
        assert "not retried" in run.data.tags["stop_reason"] and "retries" not in run.data.tags
    assert "failed 2" in result.stdout


def test_reproduce_matches_then_detects_tampering(grid_study, mlflow_server: str):
    client, parent, _ = grid_study
    run = next(
        r for r in children(client, parent.info.run_id)
        if r.info.status == "FINISHED" and r.data.params["model.hidden"] == "[16]"
    )
    ok = run_cli("reproduce", run.info.run_id, "--tracking-uri", mlflow_server)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "MATCH" in ok.stdout and "val/loss" in ok.stdout
    assert "Downloading artifacts" not in ok.stderr  # MLflow's progress bar is noise here (-v shows it)
    # A later value at the same step replaces the recorded one: reproduce must notice.
    recorded = client.get_metric_history(run.info.run_id, "val/loss")[-1]
    client.log_metric(run.info.run_id, "val/loss", recorded.value + 1e-3, step=recorded.step)
    bad = run_cli("reproduce", run.info.run_id, "--tracking-uri", mlflow_server)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "MISMATCH" in bad.stdout


def test_reproduce_rejects_a_parent_run(grid_study, mlflow_server: str):
    _, parent, _ = grid_study
    result = run_cli("reproduce", parent.info.run_id, "--tracking-uri", mlflow_server)
    assert result.returncode == 2 and "not a trial (child) run" in result.stderr


def test_asha_stops_trials_early_and_records_it(mlflow_server: str, tmp_path: Path):
    study = write_study(
        tmp_path,
        {
            "name": "asha-study",
            "train": {"max_epochs": 4, "batch_size": 128, "optimizer": {"name": "adamw", "lr": 0.01}},
            "search": {
                "strategy": "asha", "num_trials": 6, "reduction_factor": 2,
                "space": {"train.optimizer.lr": {"loguniform": [1e-5, 0.05]}},
            },
        },
    )
    result = run_cli(
        "run", str(study), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray"), "--quiet",
        env={"HARNESS_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    (parent,) = parent_runs(client, "asha-study")
    runs = children(client, parent.info.run_id)
    assert len(runs) == 6
    statuses = {r.info.status for r in runs}
    assert statuses <= {"FINISHED", "KILLED"} and "KILLED" in statuses and "FINISHED" in statuses
    for run in runs:
        epochs = len(client.get_metric_history(run.info.run_id, "val/loss"))
        if run.info.status == "KILLED":
            assert epochs < 4 and "stopped early by the asha scheduler" in run.data.tags["stop_reason"]
        else:
            assert epochs == 4


def test_local_default_store_needs_no_server(harness_home: Path, tmp_path: Path):
    study = write_study(tmp_path, {"name": "local-store", "search": {"num_trials": 2}})
    result = run_cli("run", str(study), "--quiet", "--set", "train.max_epochs=1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (harness_home / "mlflow.db").is_file()
    client = MlflowClient(f"sqlite:///{harness_home / 'mlflow.db'}")
    (parent,) = parent_runs(client, "local-store")
    assert len(children(client, parent.info.run_id)) == 2
