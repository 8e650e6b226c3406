"""An objective study end to end through the CLI: local Ray, a real MLflow server, TPE
choosing points and ASHA stopping them on the multi-fidelity learning curve."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from harness.objectives.functions import H6_OPTIMUM, learning_curve
from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # end to end: real Ray, a real MLflow server, the CLI

EPOCHS = 6
STUDY = {
    "name": "curve-study",
    "seed": 0,
    "objective": {"name": "learning_curve"},
    "train": {"max_epochs": EPOCHS},
    "search": {
        "searcher": "tpe",
        "scheduler": "asha",
        "num_trials": 6,
        "metric": "objective/value",
        "reduction_factor": 2,
        # One at a time, so ASHA always has earlier trials to compare against.
        "max_concurrent_trials": 1,
        "space": {f"objective.x{i}": {"uniform": [0.0, 1.0]} for i in range(1, 7)},
    },
}


def write(folder: Path, spec: dict) -> Path:
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_objective_study_through_the_cli(mlflow_server: str, tmp_path: Path):
    result = run_cli(
        "run", str(write(tmp_path, STUDY)), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray"),
        "--quiet", env={"HARNESS_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sealed test split" not in result.stdout  # an objective has no test split

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("curve-study")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'study'")
    assert parent.info.status == "FINISHED"
    metrics = parent.data.metrics
    assert metrics["objective/optimum"] == H6_OPTIMUM
    assert not any(key.startswith("test/") for key in metrics)
    assert math.isclose(metrics["best/objective/value"], H6_OPTIMUM + metrics["best/objective/regret"])

    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 6
    statuses = {run.data.tags["status"] for run in children}
    assert statuses == {"FINISHED", "KILLED"}, statuses  # some ran the full budget, ASHA stopped others
    for run in children:
        x = [float(run.data.params[f"objective.x{i}"]) for i in range(1, 7)]
        history = client.get_metric_history(run.info.run_id, "objective/value")
        epochs = sorted(int(m.step) for m in history)
        assert epochs == list(range(1, len(epochs) + 1))
        for point in history:  # every epoch's value is the learning curve at this trial's inputs
            assert math.isclose(point.value, learning_curve(x, int(point.step), EPOCHS), rel_tol=1e-9)
        if run.data.tags["status"] == "KILLED":
            assert len(epochs) < EPOCHS and "stopped early by the asha scheduler" in run.data.tags["stop_reason"]
        else:
            assert len(epochs) == EPOCHS

    # Any trial reproduces from its stored spec, without training anything.
    reproduced = run_cli("reproduce", children[0].info.run_id, "--tracking-uri", mlflow_server)
    assert reproduced.returncode == 0 and "MATCH" in reproduced.stdout, reproduced.stdout + reproduced.stderr



def test_pbt_keeps_one_run_per_trial_and_records_mutations(mlflow_server: str, tmp_path: Path):
    spec = {
        "name": "pbt-study",
        "seed": 0,
        "objective": {"name": "branin"},
        "train": {"max_epochs": 6},
        "search": {
            "strategy": "pbt",
            "num_trials": 3,
            "metric": "objective/value",
            "perturbation_interval": 2,
            "space": {"objective.x1": {"uniform": [-5.0, 10.0]}, "objective.x2": {"uniform": [0.0, 15.0]}},
        },
    }
    result = run_cli(
        "run", str(write(tmp_path, spec)), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray"),
        "--quiet", env={"HARNESS_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("pbt-study")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'trial'")
    # An exploit restarts a trial with a new configuration; it stays the same trial and run.
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    mutated = [r for r in runs if any(k.startswith("config/") for k in r.data.metrics)]
    assert mutated, "PBT perturbed no trial"
    for run in mutated:
        live = yaml.safe_load(run.data.tags["config"])
        assert run.data.metrics["config/objective.x1"] == pytest.approx(live["objective.x1"])


@pytest.mark.parametrize("strategy", ["hyperband", "bohb"])
def test_a_study_whose_scheduler_stops_paused_trials_ends_complete(strategy: str, mlflow_server: str, tmp_path: Path):
    # Synchronous Hyperband pauses trials at each rung and later stops the bottom ones while
    # they are paused; Ray Tune's saved state does not record those stops, which once made a
    # study that ran to its end look interrupted (parent KILLED, a resume hint, no best trial).
    spec = {
        "name": f"{strategy}-study",
        "seed": 0,
        "objective": {"name": "branin"},
        "train": {"max_epochs": 9},
        "search": {
            "strategy": strategy,
            "num_trials": 9,
            "metric": "objective/value",
            "grace_period": 1,
            "reduction_factor": 3,
            "space": {"objective.x1": {"uniform": [-5.0, 10.0]}, "objective.x2": {"uniform": [0.0, 15.0]}},
        },
    }
    result = run_cli(
        "run", str(write(tmp_path, spec)), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray"),
        "--quiet", env={"HARNESS_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "interrupted; continue with" not in result.stdout, result.stdout[-3000:]
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(f"{strategy}-study")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'study'")
    assert parent.info.status == "FINISHED" and "best_trial_id" in parent.data.tags
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`harness.kind` = 'trial'")
    assert len(runs) == 9
    stopped = [r for r in runs if r.info.status == "KILLED"]
    assert stopped and all(f"stopped early by the {strategy}" in r.data.tags["stop_reason"] for r in stopped)
    assert all(r.info.status == "FINISHED" for r in runs if r not in stopped)
