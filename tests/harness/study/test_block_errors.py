"""The spec's errors about building blocks (datasets, splits): the field's path, what was given
and what is allowed."""

from __future__ import annotations

import re

import pytest

from harness.errors import SpecError
from harness.study import spec_from_dict

MOTOR = {"name": "motor", "num_samples": 300, "length": 32}


def test_unknown_ucr_name_lists_the_available_ones():
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "s", "data": {"dataset": "ucr:NoSuchSet"}, "model": {"kind": "lstm"}})
    message = str(err.value)
    assert "data.dataset.dataset" in message and "'NoSuchSet'" in message
    assert "JapaneseVowels" in message and "BasicMotions" in message and "ItalyPowerDemand" in message


@pytest.mark.parametrize(
    "data, path",
    [
        ({"split": {"kind": "random", "val": 0.7, "test": 0.4}}, "data.split: val + test must be < 1"),
        ({"split": {"kind": "chronological", "val": 0.5, "test": 0.5}}, "data.split: val + test must be < 1"),
        ({"split": {"kind": "kfold", "folds": 1}}, "data.split.folds: Input should be greater than or equal to 2"),
        ({"dataset": MOTOR, "split": {"kind": "group", "column": "humidity"}}, "data.split.column: not a regime column"),
        ({"split": {"kind": "regime", "column": "temperature"}}, "data.split.column: not a regime column"),
    ],
)
def test_bad_split_settings_name_the_field(data: dict, path: str):
    with pytest.raises(SpecError, match=re.escape(path)):
        spec_from_dict({"name": "s", "data": data, "model": {"kind": "mlp"}})


def test_regime_column_errors_list_the_dataset_columns():
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "s", "data": {"dataset": MOTOR, "split": {"kind": "group", "column": "rpm"}}})
    assert "(given 'rpm')" in str(err.value) and "temperature, speed, load" in str(err.value)


