"""Every trial kind: chosen for the studies it runs, fits a resolved spec outside Ray
reporting each epoch, and evaluates the chosen trial from a Ray result as finalize does."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray import tune

from harness.study import spec_from_dict
from harness.trial.kinds import TRIAL_KINDS, kind_for
from harness.trial.ray_adapter import CHECKPOINT_FILE

TINY = {"model": {"kind": "mlp", "hidden": [8]}, "train": {"max_epochs": 2, "batch_size": 128}}
STUDIES = {
    "training": {"name": "k-train", **TINY},
    "kfold": {"name": "k-fold", **TINY, "data": {"split": {"kind": "kfold", "folds": 3}}},
    "compression": {
        "name": "k-compress", **TINY,
        "compress": {"steps": [{"kind": "prune", "amount": 0.5, "finetune_epochs": 1}, {"kind": "quantize"}]},
    },
    "bias_variance": {
        "name": "k-bv", "data": {"dataset": {"name": "poly", "num_samples": 40}, "split": {"kind": "random"}, "preprocessing": []},
        "model": {"kind": "polynomial", "degree": 2}, "train": {"max_epochs": 2, "batch_size": "full"},
        "bias_variance": {"training_sets": 3, "points": 11},
    },
    "specialists": {
        "name": "k-spec", "data": {"dataset": {"name": "motor", "num_samples": 120, "length": 32}, "split": {"kind": "random"}},
        "model": {"kind": "mlp", "hidden": [8]}, "train": {"max_epochs": 2, "batch_size": 32},
        "specialists": {"column": "temperature"},
    },
    "objective": {
        "name": "k-obj", "objective": {"name": "branin"}, "train": {"max_epochs": 2},
        "search": {"metric": "objective/value"},
    },
}


def test_every_registered_kind_is_covered_here():
    assert set(STUDIES) == set(TRIAL_KINDS.names())


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_kind_fits_reports_and_evaluates_the_chosen_trial(name: str, tmp_path: Path):
    spec = spec_from_dict(STUDIES[name])
    assert kind_for(spec) == name
    kind = TRIAL_KINDS.get(name)
    rows: list[dict[str, Any]] = []
    folder = tmp_path / "checkpoint"
    folder.mkdir()

    def sink(metrics: dict[str, Any], where: Any) -> None:
        rows.append(metrics)
        if hasattr(where, "save_checkpoint"):  # a training kind hands over its trainer (or folds)
            where.save_checkpoint(folder / CHECKPOINT_FILE)
        elif isinstance(where, Path):  # a compression trial's final report: its artifact's folder
            shutil.copytree(where, folder, dirs_exist_ok=True)

    prepared: dict[str, Any] = {}
    if name == "compression":
        from harness.trial.compression import fit_teacher

        prepared["teacher"] = fit_teacher(spec)[0]
    kind.fit(spec, sink, accelerator="cpu", **prepared)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert kind.trainable(spec, **prepared) is not None  # a Ray Tune trainable with its parameters bound
    result = SimpleNamespace(metrics=rows[-1], checkpoint=tune.Checkpoint.from_directory(str(folder)), config={})
    scores = kind.evaluate(spec, result)
    if name == "objective":
        assert scores["best/objective/regret"] == rows[-1]["objective/regret"]
    elif name in ("bias_variance", "specialists"):  # regression
        assert scores["test/loss"] > 0 and scores["test/rmse/" + ("x_bin_0" if name == "bias_variance" else "temperature_bin_0")] > 0
        if name == "bias_variance":
            assert rows[-1]["bv/expected_error"] == pytest.approx(
                rows[-1]["bv/bias2"] + rows[-1]["bv/variance"] + rows[-1]["bv/noise"], rel=1e-9
            )
            assert "test/loss_std" in scores  # over the training sets
        else:
            assert {f"test/specialist/loss/temperature_bin_{i}" for i in range(3)} <= set(scores)
    else:
        assert 0 <= scores["test/acc"] <= 1 and scores["test/loss"] > 0
        if name == "kfold":
            assert "test/acc_std" in scores


def test_kinds_are_tried_by_priority():
    order = ("compression", "objective", "bias_variance", "specialists", "kfold", "training")
    priorities = [TRIAL_KINDS.get(name).priority for name in order]
    assert priorities == sorted(priorities)
    # An objective study with a k-fold split is still an objective study.
    spec = spec_from_dict({**STUDIES["objective"], "data": {"split": {"kind": "kfold"}}})
    assert kind_for(spec) == "objective"


@pytest.mark.parametrize("name", ["kfold", "bias_variance", "specialists"])
def test_no_scratch_folder_is_left_by_a_fit_of_several_models(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A temp folder of its own: other tests (or test workers) may make scratch folders meanwhile.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    TRIAL_KINDS.get(name).fit(spec_from_dict(STUDIES[name]), lambda metrics, where: None)
    assert list(tmp_path.iterdir()) == []
