"""The tracking store is checked before anything runs, a new local store is created once when
studies start on it together, and every way out of a study closes the runs it opened."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.errors import SpecError
from harness.tracking.store import check_server, check_store, check_writable
from tests.conftest import free_port


def _first_use(uri: str) -> str:
    try:
        check_store(uri)
        MlflowClient(uri).create_experiment(f"e-{multiprocessing.current_process().pid}")
        return "ok"
    except Exception as exc:  # the test reports what went wrong in which process
        return f"{type(exc).__name__}: {exc}"


def test_studies_starting_together_on_a_new_local_store_all_succeed(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_first_use, [uri] * 4)
    assert results == ["ok"] * 4
    assert len(MlflowClient(uri).search_experiments()) == 5  # Default + one per process


def test_a_server_that_does_not_answer_fails_in_seconds():
    start = time.monotonic()
    with pytest.raises(SpecError, match="the MLflow server does not answer"):
        check_server(f"http://127.0.0.1:{free_port()}")
    assert time.monotonic() - start < 5


def test_a_folder_that_cannot_be_written_is_named(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SpecError, match=r"--storage .*a-file/x: cannot write there \(Not a directory\)"):
        check_writable(blocker / "x", "--storage")
    with pytest.raises(SpecError, match="cannot write there"):
        check_store(f"sqlite:///{blocker / 'mlflow.db'}")


def test_every_way_out_of_a_study_closes_what_it_opened(mlflow_server: str):
    from harness.run.execute import _closed_on_exit
    from harness.run.plan import StudyPlan
    from harness.study import spec_from_dict
    from harness.tracking.runs import start_study_run
    from harness.tracking.trials import ChildRuns

    plan = StudyPlan.of(spec_from_dict({"name": "exits", "train": {"max_epochs": 3}}))
    client = MlflowClient(mlflow_server)
    for error, parent_status in ((OSError("disk full"), "FAILED"), (KeyboardInterrupt(), "KILLED")):
        study = start_study_run(plan.spec, mlflow_server, "random", plan.kind_name)
        runs = ChildRuns(study, plan, plan.scheduler_name)
        runs.log_epoch("t1", {}, {"epoch": 1, "val/loss": 0.5})
        with pytest.raises(type(error)), _closed_on_exit(study, plan):
            raise error
        assert client.get_run(study.parent_run_id).info.status == parent_status
        child = client.get_run(runs.run_ids()["t1"])
        assert child.info.status == "KILLED" and child.data.tags["stop_reason"].startswith("driver interrupted")
    assert "OSError: disk full" in [
        r.data.tags.get("stop_reason") for r in client.search_runs([study.experiment_id]) if r.info.status == "FAILED"
    ]
