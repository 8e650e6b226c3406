"""`harness compare` end to end through the CLI with local Ray and a real MLflow server: a
comparison on an epoch budget (each execution is a study with `search.budget_epochs`, which
stops at the budget and is complete), stopped by Ctrl-C and resumed as a whole; its MLflow run
tree and report files; a resume of the finished comparison that runs nothing; bad comparisons
that leave nothing behind."""

from __future__ import annotations

import json
import math
import os
import re
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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, a real MLflow server, the CLI

# 10 epochs is no multiple of 3: in every execution, some trial is cut mid-way by the budget.
BUDGET, EPOCHS, STRATEGIES, SEEDS = 10, 3, ["random", "tpe"], [0, 1]
BRANIN = {
    "name": "branin",
    "objective": {"name": "branin"},
    "train": {"max_epochs": EPOCHS},
    "search": {
        "metric": "objective/value",
        "space": {"objective.x1": {"uniform": [-5.0, 10.0]}, "objective.x2": {"uniform": [0.0, 15.0]}},
    },
}


def write_comparison(folder: Path, name: str, **changes) -> Path:
    (folder / "branin.yaml").write_text(yaml.safe_dump(BRANIN, sort_keys=False))
    raw = {
        "name": name,
        "study": "branin.yaml",  # relative to the comparison file
        "strategies": STRATEGIES,
        "seeds": len(SEEDS),
        "budget": {"epochs": BUDGET},
        "target": 20.0,
        **changes,
    }
    path = folder / "compare.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def runs_of(client: MlflowClient, name: str) -> dict[str, list]:
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=5000) if experiment else []
    kinds: dict[str, list] = {"comparison": [], "study": [], "trial": []}
    for run in runs:
        kinds[run.data.tags["harness.kind"]].append(run)
    return kinds


def wait_for_a_finished_execution(storage: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the comparison ended early:\n{proc.stdout.read() if proc.stdout else ''}"
        for state in storage.glob("*/harness_comparison.json"):
            try:
                executions = json.loads(state.read_text())["executions"]
            except ValueError:
                continue  # being written
            if any(e["status"] == "finished" for e in executions):
                return state.parent
        time.sleep(0.2)
    raise AssertionError("no execution finished")


def test_compare_interrupted_resumed_reported(mlflow_server: str, harness_home: Path, tmp_path: Path, capsys) -> None:
    name = "cmp-e2e"
    storage = tmp_path / "compare"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [*HARNESS, "compare", str(write_comparison(tmp_path, name)), "--tracking-uri", mlflow_server,
               "--storage", str(storage), "--quiet"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        folder = wait_for_a_finished_execution(storage, proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, out[-3000:]
    assert f"harness resume {folder}" in out

    client = MlflowClient(mlflow_server)
    stopped = runs_of(client, name)
    (comparison,) = stopped["comparison"]
    assert comparison.info.status == "KILLED"
    assert not [r for kind in stopped.values() for r in kind if r.info.status == "RUNNING"]
    finished_before = {r.info.run_id for r in stopped["study"] if r.info.status == "FINISHED"}
    assert finished_before and len(finished_before) < len(STRATEGIES) * len(SEEDS)

    result = run_cli("resume", str(folder))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "p vs random" in result.stdout and "final best" in result.stdout
    # Each execution's progress counts in its budget's unit: epochs of the 10-epoch budget.
    spent = [re.match(r"\[epochs (\d+)/(\d+)\]", line) for line in result.stdout.splitlines()]
    spent = [m for m in spent if m]
    assert spent and all(int(m.group(2)) == BUDGET and int(m.group(1)) <= BUDGET + EPOCHS for m in spent)

    # The run tree: comparison -> one FINISHED study run per (strategy, seed) -> its trials.
    kinds = runs_of(client, name)
    (comparison,) = kinds["comparison"]
    comparison_id = comparison.info.run_id
    assert comparison.info.status == "FINISHED" and comparison.data.tags["comparison_id"] == comparison_id
    finished = [r for r in kinds["study"] if r.info.status == "FINISHED"]
    assert finished_before <= {r.info.run_id for r in finished}  # finished executions were not run again
    assert sorted((r.data.tags["strategy"], int(r.data.tags["seed"])) for r in finished) == sorted(
        product(STRATEGIES, SEEDS)
    )
    for study in kinds["study"]:
        assert study.data.tags["mlflow.parentRunId"] == comparison_id
        assert study.data.tags["comparison_id"] == comparison_id
        assert study.info.status in ("FINISHED", "KILLED")  # KILLED: an execution restarted from scratch
    assert not [r for r in kinds["trial"] if r.info.status == "RUNNING"]
    ran = {r.info.run_id: int(r.data.metrics.get("epoch", 0)) for r in kinds["trial"]}
    for study in finished:  # each stopped at its epoch budget, complete, and cut what still ran
        trials = [r for r in kinds["trial"] if r.data.tags["mlflow.parentRunId"] == study.info.run_id]
        assert sum(ran[r.info.run_id] for r in trials) == BUDGET  # every epoch run counts; no more ran
        assert all(ran[r.info.run_id] == EPOCHS for r in trials if r.info.status == "FINISHED")
        cut = [r for r in trials if r.info.status == "KILLED"]
        assert any(0 < ran[r.info.run_id] < EPOCHS for r in cut)
        assert all(r.data.tags["stop_reason"].startswith("study budget exhausted after") for r in cut)
        assert "best/objective/regret" in study.data.metrics

    # The report files, and the same on the comparison run.
    report = folder / "report"
    trials = pd.read_csv(report / "trials.csv")
    assert set(trials["study_run_id"]) == {r.info.run_id for r in finished}
    assert len(trials) == sum(1 for r in kinds["trial"] if ran[r.info.run_id] > 0 and r.data.tags["mlflow.parentRunId"]
                              in set(trials["study_run_id"]))  # fmt: skip
    assert (trials.groupby("study_run_id")["spent_epochs"].max() == BUDGET).all()
    curves = pd.read_csv(report / "curves.csv")
    assert set(curves["axis"]) == {"trials", "epochs", "seconds"}
    for axis in ("trials", "epochs", "seconds"):
        on_axis = curves[curves["axis"] == axis]
        assert set(zip(on_axis["strategy"], on_axis["seed"], strict=True)) == set(product(STRATEGIES, SEEDS))
    assert curves[curves["axis"] == "epochs"]["budget"].max() == BUDGET
    assert pd.read_parquet(report / "curves.parquet").equals(curves)
    summary = pd.read_csv(report / "summary.csv").set_index("strategy")
    assert set(summary.index) == set(STRATEGIES) and (summary["seeds"] == len(SEEDS)).all()
    for strategy in STRATEGIES:  # final best = mean over seeds of each seed's best trial
        bests = trials[trials["strategy"] == strategy].groupby("seed")["value"].min()
        row = summary.loc[strategy]
        assert math.isclose(row["final_best"], bests.mean(), rel_tol=1e-9)
        assert row["ci_low"] <= row["final_best"] <= row["ci_high"]
        # Median regret: of each seed's chosen (best-valued) trial; noise-free Branin, so exact.
        chosen = trials[trials["strategy"] == strategy].sort_values("value").groupby("seed").head(1)
        assert math.isclose(row["median_regret"], chosen["regret"].median(), rel_tol=1e-9)
        assert row["spent_epochs"] == BUDGET
    assert summary.loc["tpe", "test"] == "wilcoxon" and 0 < summary.loc["tpe", "p_value"] <= 1
    assert pd.isna(summary.loc["random", "p_value"])  # the baseline
    assert summary["mean_rank"].sum() == pytest.approx(3.0)  # two strategies: ranks 1 and 2 (or 1.5 each)
    assert "<svg" in (report / "report.html").read_text()
    logged = {a.path for a in client.list_artifacts(comparison_id)}
    assert {"trials.csv", "curves.csv", "curves.parquet", "summary.csv", "report.html", "comparison.yaml"} <= logged
    assert client.get_run(comparison_id).data.metrics["tpe/mean_rank"] == summary.loc["tpe", "mean_rank"]

    # Resuming the finished comparison runs nothing and logs nothing again.
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["resume", str(folder)]) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # the CLI makes SIGTERM act as Ctrl-C
    assert "nothing was run again" in capsys.readouterr().out
    after = runs_of(client, name)
    assert {k: sorted(r.info.run_id for r in v) for k, v in after.items()} == {
        k: sorted(r.info.run_id for r in v) for k, v in kinds.items()
    }
    assert len(client.get_metric_history(comparison_id, "tpe/mean_rank")) == 1


BAD = {
    "unknown strategy": ({"strategies": ["random", "bayes"]}, "strategies[1]: unknown strategy 'bayes'; known: asha,"),
    "grid over a continuous range": (
        {"strategies": ["random", "grid"]},
        "strategies[1] (grid): search.space.objective.x1: the grid searcher needs a finite set of values",
    ),
    "a budget of 0": ({"budget": {"epochs": 0}}, "budget.epochs: Input should be greater than or equal to 1 (given 0)"),
    "a target no strategy can reach": ({"target": -1.0}, "target: below the known optimum of branin (0.397887)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_comparison_exits_2_and_writes_nothing(
    case: str, mlflow_server: str, harness_home: Path, tmp_path: Path, capsys
) -> None:
    changes, expected = BAD[case]
    name = "bad-" + case.replace(" ", "-")
    comparison = write_comparison(tmp_path, name, **changes)
    code = main(["compare", str(comparison), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "compare")])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err, err
    assert MlflowClient(mlflow_server).get_experiment_by_name(name) is None
    assert not (tmp_path / "compare").exists() and not harness_home.exists()
