"""A comparison running its executions concurrently (`parallel: 3`, one driver process each)
through the CLI, killed with SIGKILL mid-way and resumed: every execution complete, each in its
own MLflow run tree, nothing lost, duplicated or left RUNNING, no driver left behind, and the
report equal in content to the same comparison run one execution at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from itertools import product
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from harness.cli import main
from tests.conftest import HARNESS, ROOT, run_cli
from tests.integration.test_compare import runs_of, wait_for_a_finished_execution

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STRATEGIES, SEEDS, TRIALS, EPOCHS = ["random", "tpe", "cmaes"], [0, 1], 5, 3
HARTMANN = {
    "name": "hartmann6",
    "objective": {"name": "hartmann6"},
    "train": {"max_epochs": EPOCHS},
    # One trial at a time: a model-based searcher sees every result before its next
    # suggestion, so an execution's trials do not depend on how fast its neighbours run.
    "search": {
        "metric": "objective/value",
        "max_concurrent_trials": 1,
        "space": {f"objective.x{i}": {"uniform": [0.0, 1.0]} for i in range(1, 7)},
    },
}


def write_comparison(folder: Path, name: str, parallel: int) -> Path:
    raw = {"name": name, "study": HARTMANN, "strategies": STRATEGIES, "seeds": len(SEEDS),
           "budget": {"trials": TRIALS}, "parallel": parallel}  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def children_of(pool_pid: int) -> list[str]:
    """The execution driver processes of the comparison whose process is `pool_pid`."""
    out = subprocess.run(["pgrep", "-af", f"harness.run.child {pool_pid}"], capture_output=True, text=True).stdout
    return out.splitlines()


def trial_values(report: Path) -> pd.DataFrame:
    trials = pd.read_csv(report / "trials.csv")
    return trials.sort_values(["strategy", "seed", "spent_trials"])[["strategy", "seed", "spent_trials", "value"]]


def test_concurrent_comparison_killed_resumed_equals_sequential(
    mlflow_server: str, harness_home: Path, tmp_path: Path, capsys
) -> None:
    storage = tmp_path / "compare"
    command = [*HARNESS, "compare", str(write_comparison(tmp_path, "cc-par", parallel=3)),
               "--tracking-uri", mlflow_server, "--storage", str(storage), "--quiet"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        folder = wait_for_a_finished_execution(storage, proc)
        assert children_of(proc.pid), "no execution was running in a driver of its own"
        proc.send_signal(signal.SIGKILL)  # the comparison's driver only: its children follow it
        proc.communicate(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while children_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not children_of(proc.pid), "an execution's driver outlived the comparison"

    result = run_cli("resume", str(folder))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "at once" in result.stdout

    client = MlflowClient(mlflow_server)
    kinds = runs_of(client, "cc-par")
    assert not [r for kind in kinds.values() for r in kind if r.info.status == "RUNNING"]
    (comparison,) = kinds["comparison"]
    assert comparison.info.status == "FINISHED"
    finished = [r for r in kinds["study"] if r.info.status == "FINISHED"]
    assert sorted((r.data.tags["strategy"], int(r.data.tags["seed"])) for r in finished) == sorted(
        product(STRATEGIES, SEEDS)
    )
    for study in finished:  # its own run tree: exactly its budget of trials, each epoch once
        assert study.data.tags["mlflow.parentRunId"] == comparison.info.run_id
        trials = [r for r in kinds["trial"] if r.data.tags["mlflow.parentRunId"] == study.info.run_id]
        assert len(trials) == TRIALS and all(r.info.status == "FINISHED" for r in trials)
        for trial in trials:
            steps = [m.step for m in client.get_metric_history(trial.info.run_id, "objective/value")]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), steps

    # The same comparison one execution at a time, in this process: the same trials and values.
    sequential = write_comparison(tmp_path, "cc-seq", parallel=1)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["compare", str(sequential), "--tracking-uri", mlflow_server, "--storage",
                     str(tmp_path / "seq"), "--quiet"]) == 0  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # the CLI makes SIGTERM act as Ctrl-C
    assert "at once" not in capsys.readouterr().out
    (seq_folder,) = (tmp_path / "seq").iterdir()
    concurrent, alone = trial_values(folder / "report"), trial_values(seq_folder / "report")
    assert len(concurrent) == len(STRATEGIES) * len(SEEDS) * TRIALS
    pd.testing.assert_frame_equal(concurrent.reset_index(drop=True), alone.reset_index(drop=True))
    summary = pd.read_csv(folder / "report" / "summary.csv").set_index("strategy")
    summary_alone = pd.read_csv(seq_folder / "report" / "summary.csv").set_index("strategy")
    for column in ("final_best", "median_regret", "mean_rank", "p_value"):
        pd.testing.assert_series_equal(summary[column], summary_alone.loc[summary.index, column])
