"""A study whose driver dies (SIGKILL) or is stopped (SIGINT) mid-way is resumed to completion:
no trial lost or duplicated in Ray or MLflow, no run left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import HARNESS, ROOT, run_cli, write_study

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # end to end: real Ray, a real MLflow server, the CLI

NUM_TRIALS, EPOCHS = 5, 4
SLOW_STUDY = {
    "search": {
        "strategy": "random",
        "num_trials": NUM_TRIALS,
        "max_concurrent_trials": 2,
        "space": {"train.optimizer.lr": {"loguniform": [0.001, 0.05]}, "model.hidden": {"choice": [[32], [64]]}},
    },
    # Small batches make each epoch take a noticeable time, so the driver dies mid-trial.
    "train": {"max_epochs": EPOCHS, "batch_size": 4, "optimizer": {"name": "adamw", "lr": 0.01}},
}


def child_runs(client: MlflowClient, name: str) -> tuple[list, list]:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return [], []
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("harness.kind") == "study"]
    return parents, [r for r in runs if r.data.tags.get("harness.kind") == "trial"]


def start_driver(study: Path, uri: str, storage: Path, home: Path, quiet: bool = True) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HARNESS_HOME": str(home)}
    cmd = [*HARNESS, "run", str(study), "--tracking-uri", uri, "--storage", str(storage)] + (["--quiet"] if quiet else [])
    # Its own session, so that the test can clean up whatever the killed driver leaves.
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until_mid_study(client: MlflowClient, name: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until at least one trial finished and another is running with two or more epochs to go
    (one about to finish could end before the signal lands, leaving nothing mid-trial)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"driver ended early:\n{proc.stdout.read() if proc.stdout else ''}"
        _, trials = child_runs(client, name)
        finished = [r for r in trials if r.info.status == "FINISHED"]
        early = [r for r in trials if r.info.status == "RUNNING" and r.data.metrics.get("epoch", 0) <= EPOCHS - 2]
        if finished and early:
            return
        time.sleep(0.1)  # the window is a few seconds: a trial's epochs take a fraction of one each
    raise AssertionError("the study never got mid-way")


def kill_session(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def experiment_folder(storage: Path) -> Path:
    (folder,) = [p for p in storage.iterdir() if p.is_dir()]
    return folder


def assert_complete(client: MlflowClient, name: str, storage: Path) -> None:
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(experiment_folder(storage)))
    ray_trials = {t.trial_id: t for t in analysis.trials}
    assert len(ray_trials) == NUM_TRIALS
    assert all(t.status == "TERMINATED" for t in ray_trials.values())
    # A finished study keeps each trial's newest checkpoint only.
    for trial in ray_trials.values():
        assert [p.name for p in Path(trial.path).glob("checkpoint_*")] == [Path(trial.checkpoint.path).name]

    (parent,), trials = child_runs(client, name)
    assert parent.info.status == "FINISHED"
    assert not [r for r in trials if r.info.status == "RUNNING"]
    by_trial: dict[str, list] = {}
    for run in trials:
        by_trial.setdefault(run.data.tags["trial_id"], []).append(run)
    # One run per Ray trial; a run for a trial Ray never recorded is closed and marked as such.
    for trial_id in ray_trials:
        (run,) = by_trial.pop(trial_id)
        assert run.info.status == "FINISHED", run.data.tags
        history = client.get_metric_history(run.info.run_id, "val/loss")
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    for leftover in by_trial.values():
        for run in leftover:
            assert run.info.status == "KILLED" and "not resumed" in run.data.tags["stop_reason"]
    assert parent.data.metrics.get("test/acc") is not None


def test_resume_after_sigkill(mlflow_server: str, tmp_path: Path) -> None:
    name = "resume-kill"
    study = write_study(tmp_path, {**SLOW_STUDY, "name": name})
    storage, home = tmp_path / "ray", tmp_path / "home"
    client = MlflowClient(mlflow_server)
    proc = start_driver(study, mlflow_server, storage, home)
    try:
        wait_until_mid_study(client, name, proc)
        proc.send_signal(signal.SIGKILL)  # the driver alone, as `kill -9 PID` would
        proc.wait(timeout=30)
        time.sleep(3)  # let Ray's reaper stop the orphaned local cluster
    finally:
        kill_session(proc)

    (parent,), trials = child_runs(client, name)
    assert parent.info.status == "RUNNING"  # nothing closed it: the driver was killed
    finished_before = {r.data.tags["trial_id"] for r in trials if r.info.status == "FINISHED"}
    assert finished_before

    result = run_cli("resume", str(experiment_folder(storage)), env={"HARNESS_HOME": str(home)}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_complete(client, name, storage)
    # Trials that had finished were not re-run: their histories were not logged twice.
    _, trials = child_runs(client, name)
    for run in trials:
        if run.data.tags["trial_id"] in finished_before:
            epochs = client.get_metric_history(run.info.run_id, "epoch")
            assert len(epochs) == EPOCHS


def test_sigint_stops_cleanly_then_resumes(mlflow_server: str, tmp_path: Path) -> None:
    name = "resume-sigint"
    study = write_study(tmp_path, {**SLOW_STUDY, "name": name})
    storage, home = tmp_path / "ray", tmp_path / "home"
    client = MlflowClient(mlflow_server)
    proc = start_driver(study, mlflow_server, storage, home, quiet=False)  # with the progress view
    try:
        wait_until_mid_study(client, name, proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        kill_session(proc)
    assert proc.returncode == 130, out[-3000:]
    assert f"harness resume {experiment_folder(storage)}" in out
    # Quiet by default: only the harness's resume hint, not Ray Tune's own, nor its warnings
    # about trials it cannot read back; the view counts the stopped trials as interrupted.
    assert "Tuner.restore" not in out and "Failed to fetch metrics" not in out
    assert "interrupted: " in out and "running trial(s) stopped" in out

    (parent,), trials = child_runs(client, name)
    assert parent.info.status == "KILLED"
    assert not [r for r in trials if r.info.status == "RUNNING"]
    suspended = [r for r in trials if r.data.tags.get("stop_reason", "").startswith("driver interrupted")]
    assert suspended, [r.data.tags for r in trials]

    result = run_cli("resume", str(experiment_folder(storage)), env={"HARNESS_HOME": str(home)}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_complete(client, name, storage)


def saved_trial_statuses(folder: Path) -> dict[str, str]:
    """Trial id -> status in the newest experiment state Ray Tune saved in `folder`."""
    import json

    states = sorted(folder.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
    except ValueError:  # caught while being written
        return {}
    statuses = {}
    for entry in data["trial_data"]:
        trial = json.loads(entry[0] if isinstance(entry, list) else entry)
        statuses[trial["trial_id"]] = trial["status"]
    return statuses


def wait_for_saved_state(
    storage: Path, proc: subprocess.Popen, holds: Callable[[Path, dict[str, str]], bool], timeout: float = 300
) -> None:
    """Until Ray's newest saved state in the study folder under `storage` satisfies
    `holds(folder, statuses)` (or `timeout` runs out; the caller checks what it needs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"driver ended early:\n{proc.stdout.read() if proc.stdout else ''}"
        if storage.is_dir() and any(storage.iterdir()):
            folder = experiment_folder(storage)
            if holds(folder, saved_trial_statuses(folder)):
                return
        time.sleep(0.1)


def stop_driver(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal the driver alone and wait for it; then let Ray's reaper stop what it leaves."""
    proc.send_signal(sig)
    proc.wait(timeout=120)
    time.sleep(3)


def asha_records(folder: Path) -> dict[str, float]:
    """trial id (at its milestone) -> value, over every rung in the newest saved ASHA state,
    read as Ray Tune reads it on resume."""
    from ray.tune.utils.util import _load_newest_checkpoint

    state = _load_newest_checkpoint(str(folder), "callback-states-*.pkl")
    (scheduler,) = [s["scheduler"] for s in state.values() if s and "scheduler" in s]
    return {
        f"{trial_id}@{milestone}": value
        for bracket in scheduler["_brackets"]
        for milestone, recorded in bracket._rungs
        for trial_id, value in recorded.items()
    }


def test_asha_rungs_survive_a_resume(mlflow_server: str, tmp_path: Path) -> None:
    # Ray Tune restores the searcher but not the scheduler; the harness saves ASHA's rung
    # records with the experiment state and restores them, so trials that continue after a
    # resume are judged against every trial, including those that ended before the driver died.
    name = "resume-asha"
    spec = {**SLOW_STUDY, "name": name}
    # More trials than the other tests, so that some start only after the resume.
    spec["search"] = {
        **SLOW_STUDY["search"], "strategy": "asha", "grace_period": 1, "reduction_factor": 2, "num_trials": 12,
    }
    study = write_study(tmp_path, spec)
    storage, home = tmp_path / "ray", tmp_path / "home"
    client = MlflowClient(mlflow_server)
    proc = start_driver(study, mlflow_server, storage, home)
    try:
        wait_until_mid_study(client, name, proc)
        # ... and until Ray saved a state in which a trial had ended, with the rungs beside it.
        wait_for_saved_state(
            storage, proc, lambda folder, statuses: "TERMINATED" in statuses.values()
            and bool(list(folder.glob("callback-states-*.pkl"))), timeout=120,
        )
        stop_driver(proc, signal.SIGKILL)
    finally:
        kill_session(proc)

    folder = experiment_folder(storage)
    ended_before = {t for t, s in saved_trial_statuses(folder).items() if s == "TERMINATED"}
    assert ended_before, "no trial had ended in Ray's saved state before the kill"
    before = asha_records(folder)
    assert {key.split("@")[0] for key in before} >= ended_before
    started_before = set(saved_trial_statuses(folder))

    result = run_cli("resume", str(folder), env={"HARNESS_HOME": str(home)}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    after = asha_records(folder)
    # Trials that had ended are not run again, so their records can only come from the restore.
    for key, value in before.items():
        if key.split("@")[0] in ended_before:
            assert after[key] == value
    # And the restored scheduler is the one Ray Tune ran: it recorded the trials started later.
    started_after = {key.split("@")[0] for key in after} - started_before
    assert started_after, "no trial started after the resume reached a rung"
    (parent,), trials = child_runs(client, name)
    assert parent.info.status == "FINISHED" and len(trials) >= 8


def _wait_for_parent(client: MlflowClient, name: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"driver ended early:\n{proc.stdout.read() if proc.stdout else ''}"
        experiment = client.get_experiment_by_name(name)
        if experiment and client.search_runs([experiment.experiment_id]):
            return
        time.sleep(0.2)
    raise AssertionError("the parent run never appeared")


@pytest.mark.parametrize("moment", ["start-up, parent run just opened", "mid-trial, after a trial finished"])
def test_sigterm_stops_like_ctrl_c(moment: str, mlflow_server: str, tmp_path: Path) -> None:
    """SIGTERM (Slurm, Kubernetes, systemd, `timeout`) at any moment: a clean stop like Ctrl-C,
    never Ray's abort (exit 134, runs left RUNNING)."""
    name = f"sigterm-{moment.split(',')[0]}"
    study = write_study(tmp_path, {**SLOW_STUDY, "name": name})
    storage, home = tmp_path / "ray", tmp_path / "home"
    client = MlflowClient(mlflow_server)
    proc = start_driver(study, mlflow_server, storage, home)
    try:
        if moment.startswith("start-up"):
            _wait_for_parent(client, name, proc)
        else:
            wait_until_mid_study(client, name, proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        kill_session(proc)
    assert proc.returncode == 130, out[-3000:]
    assert "SIGTERM received" not in out and "Traceback" not in out
    (parent,), trials = child_runs(client, name)
    assert parent.info.status == "KILLED"
    assert not [r for r in trials if r.info.status == "RUNNING"]


def result_rows(folder: Path) -> dict[str, int]:
    """Trial id -> rows in its result.json (one per reported epoch, replays included)."""
    import json

    rows = {}
    for file in folder.glob("*/result.json"):
        lines = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        if lines:
            rows[lines[0]["trial_id"]] = len(lines)
    return rows


@pytest.mark.parametrize(("strategy", "stop"), [("hyperband", signal.SIGKILL), ("bohb", signal.SIGINT)])
def test_hyperband_and_bohb_resume_to_the_end(strategy: str, stop: signal.Signals, mlflow_server: str, tmp_path: Path) -> None:
    # Ray Tune restores neither scheduler; a fresh one put every restored trial, finished ones
    # included, into new brackets that never complete, and the resumed study stalled.
    name = f"resume-{strategy}"
    num_trials = 8
    spec = {**SLOW_STUDY, "name": name}
    spec["search"] = {**SLOW_STUDY["search"], "strategy": strategy, "reduction_factor": 2, "num_trials": num_trials}
    study = write_study(tmp_path, spec)
    storage, home = tmp_path / "ray", tmp_path / "home"
    client = MlflowClient(mlflow_server)
    proc = start_driver(study, mlflow_server, storage, home)
    try:
        # Until Ray saved a state in which a trial is paused or has ended.
        wait_for_saved_state(storage, proc, lambda folder, statuses: bool({"PAUSED", "TERMINATED"} & set(statuses.values())))
        stop_driver(proc, stop)
    finally:
        kill_session(proc)

    folder = experiment_folder(storage)
    ended_before = {t for t, s in saved_trial_statuses(folder).items() if s == "TERMINATED"}
    rows_before = result_rows(folder)
    result = run_cli("resume", str(folder), env={"HARNESS_HOME": str(home)}, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "No trial is running" not in result.stdout + result.stderr

    import json

    from ray.tune import ExperimentAnalysis

    from harness.run.callbacks import ENDED_FILE

    trials = ExperimentAnalysis(str(folder)).trials
    # Every trial ended: Ray Tune's last saved state may still show one the scheduler stopped
    # while it was paused as PAUSED (the harness records which had ended beside it).
    assert len(trials) == num_trials
    assert set(json.loads((folder / ENDED_FILE).read_text())) == {t.trial_id for t in trials}
    # A trial that had ended (finished, or stopped by the scheduler) was not opened again.
    rows_after = result_rows(folder)
    for trial_id in ended_before:
        assert rows_after[trial_id] == rows_before[trial_id], trial_id
    (parent,), runs = child_runs(client, name)
    assert parent.info.status == "FINISHED"
    assert len(runs) == num_trials and not [r for r in runs if r.info.status == "RUNNING"]
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch")]
        assert steps == list(range(1, len(steps) + 1)), (run.data.tags["trial_id"], steps)  # no gaps, no repeats
