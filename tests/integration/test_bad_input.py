"""Bad input exits 2 with the field path, the value and what is allowed, before Ray starts
and before any MLflow run (or local store) exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from harness.cli import main
from lightning_modules.data import DATASETS
from lightning_modules.models import MODELS
from tests.conftest import run_cli, write_study

pytestmark = pytest.mark.slow  # end to end: real Ray, a real MLflow server, the CLI

CASES = {
    "unknown key": (
        {"model": {"kind": "mlp", "hiden": [8]}},
        ["model.hiden: unknown key", "allowed keys: activation, dropout, hidden, kind"],
    ),
    "wrong type": ({"train": {"max_epochs": "ten"}}, ["train.max_epochs", "'ten'", "integer"]),
    "low >= high": (
        {"search": {"space": {"model.dropout": {"uniform": [0.4, 0.1]}}}},
        ["search.space.model.dropout", "low must be < high (given low=0.4, high=0.1)"],
    ),
    "loguniform low <= 0": (
        {"search": {"space": {"train.optimizer.lr": {"loguniform": [0.0, 0.1]}}}},
        ["search.space.train.optimizer.lr", "log-scale range needs low > 0 (given low=0.0)"],
    ),
    "unknown dataset": (
        {"data": {"dataset": "imagenet"}},
        [f"data.dataset: unknown dataset 'imagenet'; known: {', '.join(DATASETS.names())}"],
    ),
    "unknown model": ({"model": {"kind": "resnet"}}, [f"model.kind: unknown model 'resnet'; known: {', '.join(MODELS.names())}"]),
    "unknown strategy": (
        {"search": {"strategy": "bayes"}},
        [
            "search.strategy",
            "unknown strategy 'bayes'; known: asha, bohb, cmaes, gp, grid, hyperband, median, mogp, motpe, nsga2, pbt, random, tpe",
        ],
    ),
    "search path names no field": (
        {"search": {"space": {"train.optimiser.lr": {"loguniform": [0.001, 0.1]}}}},
        [
            "search.space.train.optimiser.lr: names no field",
            "fields under train: batch_size, early_stopping, gradient_clip, max_epochs, optimizer, regularization, "
            "schedule",
        ],
    ),
}


@pytest.fixture
def server_client(mlflow_server: str) -> MlflowClient:
    return MlflowClient(mlflow_server)


def runs_in(client: MlflowClient, name: str) -> int:
    experiment = client.get_experiment_by_name(name)
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_study_exits_2_with_a_clear_message(
    case: str, tmp_path: Path, harness_home: Path, mlflow_server: str, server_client: MlflowClient, capsys
):
    overrides, expected = CASES[case]
    name = f"bad-{case.replace(' ', '-').replace('=', '').replace('<', 'lt').replace('>', 'gt')}"
    study = write_study(tmp_path, {"name": name, **overrides})
    code = main(["run", str(study), "--tracking-uri", mlflow_server, "--storage", str(tmp_path / "ray")])
    err = capsys.readouterr().err
    assert code == 2
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert runs_in(server_client, name) == 0 and server_client.get_experiment_by_name(name) is None
    assert not (tmp_path / "ray").exists() and not harness_home.exists()


def test_malformed_yaml_through_a_real_process(tmp_path: Path, harness_home: Path):
    study = tmp_path / "broken.yaml"
    study.write_text("name: broken\nmodel: {kind: mlp, hidden: [8]\n")
    result = run_cli("run", str(study))
    assert result.returncode == 2
    assert "malformed YAML" in result.stderr and "line" in result.stderr
    assert not harness_home.exists()


def test_bad_override_is_reported_like_a_bad_file(tmp_path: Path, harness_home: Path, capsys):
    study = write_study(tmp_path, {"name": "override"})
    assert main(["validate", str(study), "--set", "train.batch_size=-4"]) == 2
    assert "train.batch_size: Input should be greater than or equal to 1 (given -4)" in capsys.readouterr().err
    assert main(["validate", str(study), "--set", "nonsense"]) == 2
    assert "expected key.path=value" in capsys.readouterr().err
    assert main(["validate", str(study), "--strategy", "grid"]) == 2  # lr is continuous
    assert "grid searcher needs a finite set of values" in capsys.readouterr().err


def test_validate_prints_the_resolved_study(tmp_path: Path, capsys):
    study = write_study(tmp_path, {"name": "good"})
    assert main(["validate", str(study), "--num-trials", "5", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "valid study 'good'" in out
    resolved = yaml.safe_load(out)  # the summary is a YAML comment: the output is the study itself
    assert resolved["seed"] == 3 and resolved["search"]["num_trials"] == 5
    assert resolved["train"]["schedule"]["name"] == "constant"  # defaults filled in


def test_set_on_a_searched_field_pins_it_and_says_so(tmp_path: Path, capsys):
    study = write_study(tmp_path, {"name": "pinned"})  # searches model.hidden and train.optimizer.lr
    assert main(["validate", str(study), "--set", "model.hidden=[64, 32]"]) == 0
    captured = capsys.readouterr()
    resolved = yaml.safe_load(captured.out)
    assert resolved["model"]["hidden"] == [64, 32]
    assert "model.hidden" not in resolved["search"]["space"] and "train.optimizer.lr" in resolved["search"]["space"]
    assert "note: model.hidden: set to [64, 32], so model.hidden is no longer searched" in captured.err
    # Setting a whole section pins every searched field under it.
    assert main(["validate", str(study), "--set", "model={kind: mlp, hidden: [8]}"]) == 0
    assert "model.hidden is no longer searched" in capsys.readouterr().err
