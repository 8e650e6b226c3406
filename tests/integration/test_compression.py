"""Compression studies end to end through the CLI, into a real MLflow server: the teacher is
trained once, every trial ships and measures its artifact, a trial reproduces, a finished
study's model is a teacher, and a bad teacher is refused before anything runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow.tracking import MlflowClient

from harness.tracking import contract as c
from tests.conftest import run_cli, write_study

pytestmark = pytest.mark.slow  # end to end: real Ray, a real MLflow server, the CLI

COMPRESS = {
    "teacher": "train",
    "steps": [
        {"kind": "prune", "amount": 0.8, "rounds": 2, "finetune_epochs": 1},
        {"kind": "quantize", "bits": 8},
    ],
}
SEARCH = {
    "strategy": "random", "num_trials": 4, "metric": "val/acc", "mode": "max",
    "space": {"compress.steps.0.amount": {"uniform": [0.5, 0.95]}, "compress.steps.1.bits": {"choice": [8, 4]}},
}


def runs_of(client: MlflowClient, experiment: str, kind: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{c.KIND}` = '{kind}'")


MULTI_OBJECTIVE = {
    "strategy": "nsga2", "num_trials": 4, "metric": "val/acc", "mode": "max",  # as the first objective
    "objectives": [{"metric": "val/acc", "mode": "max"}, {"metric": "size/bytes", "mode": "min"}],
    "constraints": ["val/acc >= 0.3"],
    "space": SEARCH["space"],
}


def test_compression_study_trains_the_teacher_once_measures_every_trial_and_records_its_front(
    mlflow_server: str, tmp_path: Path
) -> None:
    study = write_study(tmp_path, {"name": "compress-e2e", "compress": COMPRESS, "search": MULTI_OBJECTIVE,
                                   "model": {"kind": "mlp", "hidden": [32]}})
    result = run_cli("compress", str(study), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray"), "--quiet",
                     env={"HARNESS_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "size/" in result.stdout and "Pareto front" in result.stdout  # what compression bought, the front

    client = MlflowClient(mlflow_server)
    (teacher,) = runs_of(client, "compress-e2e", c.KIND_TEACHER)  # trained once, not per trial
    assert teacher.info.status == c.FINISHED and len(client.get_metric_history(teacher.info.run_id, "val/acc")) == 3
    (parent,) = runs_of(client, "compress-e2e", c.KIND_STUDY)
    assert parent.data.tags[c.TEACHER_RUN_ID] == teacher.info.run_id and "test/acc" in parent.data.metrics
    trials = runs_of(client, "compress-e2e", c.KIND_TRIAL)
    assert len(trials) == 4 and all(r.info.status == c.FINISHED for r in trials)
    for run in trials:
        metrics = run.data.metrics
        bits = int(run.data.params["compress.steps.1.bits"])
        assert metrics["sparsity"] >= 0.45 and metrics["size/bytes"] < metrics["size/teacher_bytes"]
        assert ("latency/speedup" in metrics) == (bits == 8)  # 4 bits has no integer kernel: not timed
        assert len(client.get_metric_history(run.info.run_id, "prune/round2/val/acc")) == 1
        assert [a.path for a in client.list_artifacts(run.info.run_id, c.COMPRESSED_DIR)]
    assert {int(r.data.params["compress.steps.1.bits"]) for r in trials} <= {4, 8}

    # The Pareto front: exactly the non-dominated trials, each scored once on the test split.
    front = [r for r in trials if r.data.tags.get(c.PARETO) == "true"]
    assert 1 <= len(front) == int(parent.data.metrics[c.PARETO_SIZE]) and parent.data.metrics[c.HYPERVOLUME] >= 0
    points = [(r.data.metrics["val/acc"], r.data.metrics["size/bytes"]) for r in trials]
    for run in trials:
        acc, size = run.data.metrics["val/acc"], run.data.metrics["size/bytes"]
        dominated = any(a >= acc and s <= size and (a, s) != (acc, size) for a, s in points)
        assert (run in front) == (not dominated and acc >= 0.3)
    for run in front:
        history = client.get_metric_history(parent.info.run_id, f"{c.PARETO_PREFIX}{run.data.tags[c.TRIAL_ID]}/test/acc")
        assert len(history) == 1 and 0 <= history[0].value <= 1
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(client.download_artifacts(parent.info.run_id, c.PARETO_CSV, tmp)).read_text().splitlines()
    assert table[0].startswith("trial_id,run_id,val/acc,size/bytes") and len(table) == len(front) + 1

    chosen = parent.data.tags[c.BEST_RUN_ID]
    reproduced = run_cli("reproduce", chosen, "--tracking-uri", mlflow_server)
    assert reproduced.returncode == 0, reproduced.stdout[-3000:] + reproduced.stderr[-3000:]
    assert "MATCH" in reproduced.stdout and "latency" not in reproduced.stdout


def test_a_finished_studys_model_is_a_teacher_and_a_bad_teacher_is_refused(mlflow_server: str, tmp_path: Path) -> None:
    env = {"HARNESS_HOME": str(tmp_path / "home")}
    base = write_study(tmp_path, {"name": "to-compress", "search": {**SEARCH, "num_trials": 1, "space": {}}},
                       name="base.yaml")
    assert run_cli("run", str(base), "--tracking-uri", mlflow_server, "--quiet", "--storage", str(tmp_path / "ray"),
                   env=env).returncode == 0
    client = MlflowClient(mlflow_server)
    (parent,) = runs_of(client, "to-compress", c.KIND_STUDY)
    mlflow.set_tracking_uri(mlflow_server)
    net = mlflow.pytorch.load_model(f"runs:/{parent.info.run_id}/{c.MODEL_ARTIFACT}")  # every study logs its best model
    assert net(torch.zeros(2, 64)).shape == (2, 10)

    def compress_with(teacher: dict, name: str) -> tuple:
        study = write_study(tmp_path, {
            "name": name, "search": {**SEARCH, "num_trials": 1, "space": {}},
            "compress": {"teacher": teacher, "steps": [{"kind": "quantize", "bits": 8, "activations": True}]},
        }, name=f"{name}.yaml")
        result = run_cli("compress", str(study), "--tracking-uri", mlflow_server, "--quiet",
                         "--storage", str(tmp_path / "ray"), env=env)
        return result, client.get_experiment_by_name(name)

    result, experiment = compress_with({"run": parent.info.run_id}, "from-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (study_run,) = runs_of(client, "from-run", c.KIND_STUDY)
    assert study_run.data.tags[c.TEACHER_RUN_ID] == parent.info.run_id and not runs_of(client, "from-run", c.KIND_TEACHER)

    missing, experiment = compress_with({"run": "f" * 32}, "missing-teacher")
    assert missing.returncode == 2 and f"compress.teacher.run: no run '{'f' * 32}'" in missing.stderr
    assert experiment is None  # nothing half-written
    # A training trial's run logs no model; its last checkpoint (in the study folder) is the teacher.
    (trial,) = runs_of(client, "to-compress", c.KIND_TRIAL)
    result, experiment = compress_with({"run": trial.info.run_id}, "from-trial")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # A run with neither (the teacher's own trial-less parent of a compression study) is refused.
    (compression_parent,) = runs_of(client, "from-run", c.KIND_STUDY)
    no_model, experiment = compress_with({"run": compression_parent.info.run_id}, "modelless-teacher")
    assert no_model.returncode == 2 and "logged no model" in no_model.stderr and experiment is None


def test_compare_ranks_multi_objective_strategies_by_hypervolume(mlflow_server: str, tmp_path: Path) -> None:
    import yaml

    comparison = {
        "name": "compare-pareto",
        "study": {
            "name": "pareto-base", "data": {"dataset": "digits"}, "model": {"kind": "mlp", "hidden": [16]},
            "train": {"max_epochs": 2, "batch_size": 128},
            "compress": {"steps": [{"kind": "prune", "amount": 0.5}, {"kind": "quantize", "bits": 8}]},
            "search": {
                "objectives": [{"metric": "val/acc", "mode": "max"}, {"metric": "size/bytes", "mode": "min"}],
                "reference": {"val/acc": 0.0, "size/bytes": 20000},
                "space": {"compress.steps.0.amount": {"uniform": [0.0, 0.95]}, "compress.steps.1.bits": {"choice": [8, 2]}},
            },
        },
        "strategies": ["random", "nsga2"], "seeds": 1, "budget": {"trials": 2}, "baseline": "random",
    }
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(comparison, sort_keys=False))
    result = run_cli("compare", str(path), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray"), "--quiet",
                     env={"HARNESS_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "pareto/hypervolume" in result.stdout and "val/acc 0, size/bytes 2e+04" in result.stdout
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("compare-pareto")
    studies = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{c.KIND}` = '{c.KIND_STUDY}'")
    assert len(studies) == 2 and all(c.HYPERVOLUME in run.data.metrics for run in studies)
    (comparison_run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{c.KIND}` = '{c.KIND_COMPARISON}'")
    finals = {k: v for k, v in comparison_run.data.metrics.items() if k.endswith("/final_best")}
    assert set(finals) == {"random/final_best", "nsga2/final_best"} and all(0 < v <= 20000 for v in finals.values())
