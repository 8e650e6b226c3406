"""The MLflow writer process: held writes go out together, within `BATCH_S` or at a flush, and
nothing is lost; a local store on a local disk is in SQLite's WAL mode."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from harness.run.plan import StudyPlan
from harness.study import spec_from_dict
from harness.tracking import store
from harness.tracking.runs import StudyRun, log_in_batches, start_study_run
from harness.tracking.trials import ChildRuns, config_json
from harness.tracking.writer import BATCH_S, Writer


@pytest.fixture
def local_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store.check_store(uri)
    return uri


@pytest.fixture
def plan() -> StudyPlan:
    return StudyPlan.of(spec_from_dict({"name": "writes", "train": {"max_epochs": 3}}))


class CountingClient(MlflowClient):
    """A real client that counts the store transactions `log_batch` makes."""

    log_batches = 0

    def log_batch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingClient.log_batches += 1
        return super().log_batch(*args, **kwargs)


def test_a_new_local_store_is_in_wal_mode(local_uri: str, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.file_system(tmp_path) in store.LOCAL_FILE_SYSTEMS


def test_a_store_on_a_network_file_system_keeps_its_rollback_journal(tmp_path: Path, monkeypatch) -> None:
    database = tmp_path / "remote.db"
    sqlite3.connect(database).close()
    monkeypatch.setattr(store, "file_system", lambda path: "nfs4")
    assert store.use_wal(database) is False
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_log_in_batches_keeps_to_mlflows_limits_and_writes_everything(local_uri: str) -> None:
    client = CountingClient(local_uri)
    run = client.create_run(client.create_experiment("batches"))
    params = [Param(f"p{i}", str(i)) for i in range(150)]
    metrics = [Metric("m", float(step), 0, step) for step in range(1, 1901)]
    tags = [RunTag(f"t{i}", "x") for i in range(5)]
    CountingClient.log_batches = 0
    calls = log_in_batches(client, run.info.run_id, params, metrics, tags)
    # 100 params + 5 tags + 895 metrics, then 50 params + 950 metrics, then 55 metrics.
    assert calls == CountingClient.log_batches == 3
    data = client.get_run(run.info.run_id).data
    assert len(data.params) == 150 and {f"t{i}" for i in range(5)} <= set(data.tags)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "m")] == list(range(1, 1901))
    assert log_in_batches(client, run.info.run_id) == 0


def test_a_short_trial_held_is_three_store_calls_with_everything_in_them(
    local_uri: str, plan: StudyPlan, monkeypatch
) -> None:
    monkeypatch.setattr("harness.tracking.trials.client_for", CountingClient)
    study = start_study_run(plan.spec, local_uri, "random", plan.kind_name)
    runs = ChildRuns(study, plan, plan.scheduler_name, hold=True)
    config = {"train.optimizer.lr": 0.01}
    CountingClient.log_batches = 0
    runs.ensure("t1", config, reopen=True)
    for epoch in (1, 2, 3):
        runs.log_epoch("t1", config, {"epoch": epoch, "val/loss": 1.0 / epoch})
    assert runs.holding() and CountingClient.log_batches == 0
    assert runs.close("t1", config, epochs=3, error=None) == "FINISHED"
    assert not runs.holding() and CountingClient.log_batches == 1  # params, metrics and closing tags
    client = MlflowClient(local_uri)
    run = client.get_run(runs.run_ids()["t1"])
    assert run.info.status == "FINISHED" and run.data.params == {"train.optimizer.lr": "0.01"}
    assert run.data.tags["stop_reason"] == "completed 3/3 epochs" and run.data.tags["status"] == "FINISHED"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1.0, 0.5, 1.0 / 3]


def _study(local_uri: str, plan: StudyPlan) -> StudyRun:
    return start_study_run(plan.spec, local_uri, "random", plan.kind_name)


def test_the_writer_process_sends_held_writes_within_its_deadline_and_at_a_flush(
    local_uri: str, plan: StudyPlan
) -> None:
    study, config = _study(local_uri, plan), {"train.optimizer.lr": 0.1}
    client, writer = MlflowClient(local_uri), Writer()
    try:
        writer.open("k", study, plan.scheduler_name)
        writer.spec("k", config_json(config), plan.trial_yaml(config), 3)
        writer.call("k", "ensure", "t1", config, True)
        writer.call("k", "log_epoch", "t1", config, {"epoch": 1, "val/loss": 0.7})
        # No flush: the writer process sends what it holds once BATCH_S has passed.
        deadline, run = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            found = client.search_runs([study.experiment_id], filter_string="tags.trial_id = 't1'")
            if found and found[0].data.metrics.get("val/loss") == 0.7 and found[0].data.params:
                run = found[0]
                break
            time.sleep(BATCH_S)
        assert run is not None and run.info.status == "RUNNING" and run.data.params == {"train.optimizer.lr": "0.1"}
        for epoch in (2, 3):
            writer.call("k", "log_epoch", "t1", config, {"epoch": epoch, "val/loss": 0.7 / epoch})
        writer.call("k", "close", "t1", config, 3, None)
        assert writer.flush(timeout_s=30)
        run = client.get_run(run.info.run_id)
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [1, 2, 3]
        assert writer.take_dropped() == 0
    finally:
        writer.close()
