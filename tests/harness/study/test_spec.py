"""The study spec: defaults, frozen models, overrides and error messages with field paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.errors import SpecError
from harness.study import StudySpec, load_spec, parse_override, spec_from_dict
from lightning_modules.data import DATASETS
from lightning_modules.models import MODELS

ROOT = Path(__file__).resolve().parents[3]


def base(**changes) -> dict:
    raw = {"name": "s", "model": {"kind": "mlp", "hidden": [8]}, "train": {"max_epochs": 3}}
    raw.update(changes)
    return raw


def error_of(raw: dict, overrides: dict | None = None) -> str:
    with pytest.raises(SpecError) as info:
        spec_from_dict(raw, overrides)
    return str(info.value)


def test_quickstart_loads_with_its_values():
    spec = load_spec(ROOT / "studies" / "quickstart.yaml")
    assert spec.name == "quickstart"
    assert spec.search.strategy == "asha" and spec.search.num_trials >= 20
    assert spec.model.hidden == [128]
    assert set(spec.search.space) == {"train.optimizer.lr", "model.hidden", "model.dropout"}


def test_spec_is_frozen_and_round_trips():
    spec = spec_from_dict(base())
    with pytest.raises(ValidationError):
        spec.seed = 3  # type: ignore[misc]
    again = StudySpec.model_validate(spec.to_dict())
    assert again == spec and again.spec_hash() == spec.spec_hash()


def test_hash_changes_with_any_value():
    assert spec_from_dict(base()).spec_hash() != spec_from_dict(base(seed=1)).spec_hash()


def test_overrides_are_parsed_as_yaml_and_applied():
    key, value = parse_override("model.hidden=[64, 32]")
    assert (key, value) == ("model.hidden", [64, 32])
    spec = spec_from_dict(base(), {"train.max_epochs": 5, key: value, "search.space.model.dropout": {"uniform": [0, 0.2]}})
    assert spec.train.max_epochs == 5 and spec.model.hidden == [64, 32]
    assert "model.dropout" in spec.search.space


def test_with_values_sets_dotted_paths_and_revalidates():
    spec = spec_from_dict(base())
    trial = spec.with_values({"train.optimizer.lr": 0.5, "model.dropout": 0.25})
    assert trial.train.optimizer.lr == 0.5 and trial.model.dropout == 0.25
    assert spec.train.optimizer.lr != 0.5  # the base spec is untouched
    with pytest.raises(ValidationError):
        spec.with_values({"model.dropout": 1.5})


def test_unknown_key_names_path_and_allowed_keys():
    message = error_of(base(model={"kind": "mlp", "hiden": [8]}))
    assert "model.hiden: unknown key" in message
    assert "allowed keys: activation, dropout, hidden, kind" in message


def test_wrong_type_names_path_and_value():
    message = error_of(base(train={"max_epochs": "many"}))
    assert "train.max_epochs" in message and "'many'" in message


def test_unknown_registry_entries_list_known_ones():
    datasets, models = ", ".join(DATASETS.names()), ", ".join(MODELS.names())
    assert f"data.dataset: unknown dataset 'mnistt'; known: {datasets}" in error_of(base(data={"dataset": "mnistt"}))
    message = error_of(base(data={"dataset": {"name": "mnistt"}}))
    assert f"data.dataset.name: unknown dataset 'mnistt'; known: {datasets}" in message
    assert f"model.kind: unknown model 'resnet'; known: {models}" in error_of(base(model={"kind": "resnet"}))
    message = error_of(base(search={"strategy": "bayes"}))
    assert "search.strategy" in message
    assert "known: asha, bohb, cmaes, gp, grid, hyperband, median, mogp, motpe, nsga2, pbt, random, tpe" in message
    assert "unknown optimizer 'adamx'" in error_of(base(train={"optimizer": {"name": "adamx"}}))


def test_impossible_values():
    assert "model.dropout" in error_of(base(model={"kind": "mlp", "dropout": 1.0}))
    assert "val + test must be < 1" in error_of(base(data={"split": {"val": 0.6, "test": 0.5}}))
    assert "warmup_epochs (3) must be < max_epochs (3)" in error_of(
        base(train={"max_epochs": 3, "schedule": {"name": "cosine", "warmup_epochs": 3}})
    )
    assert "gpus_per_trial" in error_of(base(resources={"gpus_per_trial": 1.5}))


def test_bad_ranges():
    space = lambda dist: base(search={"space": {"train.optimizer.lr": dist}})  # noqa: E731
    assert "low must be < high" in error_of(space({"uniform": [0.1, 0.1]}))
    assert "log-scale range needs low > 0" in error_of(space({"loguniform": [0, 0.1]}))
    assert "q must be > 0" in error_of(space({"quniform": [0.1, 0.5, 0]}))
    message = error_of(space({"normal": [0, 1]}))
    assert "search.space.train.optimizer.lr" in message and "one of: choice, grid, uniform" in message


def test_search_path_must_name_a_field():
    message = error_of(base(search={"space": {"model.hiden": {"choice": [[8]]}}}))
    assert "search.space.model.hiden: names no field of the study" in message
    assert "fields under model: activation, dropout, hidden, kind" in message
    assert "cannot be searched" in error_of(base(search={"space": {"resources.cpus_per_trial": {"choice": [1, 2]}}}))


def test_search_values_must_be_valid_for_their_field():
    message = error_of(base(search={"space": {"model.dropout": {"uniform": [0.0, 2.0]}}}))
    assert "search.space.model.dropout: value 2.0 is not allowed" in message


def test_grid_needs_discrete_values():
    message = error_of(base(search={"strategy": "grid", "space": {"train.optimizer.lr": {"uniform": [0.1, 0.2]}}}))
    assert "grid searcher needs a finite set of values" in message


def test_malformed_yaml_and_non_mapping(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="malformed YAML"):
        load_spec(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="is a mapping"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
