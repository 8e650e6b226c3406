"""Bad settings of the seed-concept options fail at load time with the field's path."""

from __future__ import annotations

import pytest

from harness.errors import SpecError
from harness.study import spec_from_dict

POLY = {"dataset": {"name": "poly"}, "split": {"kind": "random"}}


@pytest.mark.parametrize(
    "raw, path, words",
    [
        ({"bias_variance": {}}, "data.dataset", "known"),
        ({"bias_variance": {}, "data": {**POLY, "split": {"kind": "kfold"}}}, "data.split.kind", "holdout"),
        ({"bias_variance": {"training_sets": 1}, "data": POLY}, "bias_variance.training_sets", "greater than or equal to 2"),
        ({"search": {"metric": "bv/bias2"}}, "search.metric", "bias_variance"),
        ({"specialists": {"column": "speed"}}, "specialists.column", "regime column"),
        ({"specialists": {"column": "nope"}, "data": {"dataset": "motor"}}, "specialists.column", "temperature"),
        ({"train": {"snapshot_ensemble": 3}}, "train.snapshot_ensemble", "sgdr"),
        ({"train": {"snapshot_ensemble": 3, "schedule": {"name": "sgdr"}}, "data": {"split": {"kind": "kfold"}}},
         "train.snapshot_ensemble", "single training fits"),
        ({"train": {"regularization": {"time_warp": 0.2}}}, "train.regularization.time_warp", "sequence"),
        ({"train": {"regularization": {"flip": 0.5}}, "data": {"dataset": "motor"}, "model": {"kind": "gru"}},
         "train.regularization.flip", "image"),
        ({"train": {"regularization": {"flip": 1.5}}}, "train.regularization.flip", "less than or equal to 1"),
        ({"data": {"dataset": "motor", "preprocessing": [{"name": "kalman", "noise_variance": 1.0}]}, "model": {"kind": "gru"}},
         "data.preprocessing.0", "both"),
        ({"model": {"kind": "polynomial", "basis": "legendre", "interactions": True}}, "model", "interaction"),
    ],
)
def test_bad_setting_names_its_field(raw: dict, path: str, words: str) -> None:
    with pytest.raises(SpecError) as error:
        spec_from_dict({"name": "s", **raw})
    assert path in str(error.value) and words in str(error.value)


def test_good_settings_load() -> None:
    spec = spec_from_dict({"name": "s", "data": POLY, "bias_variance": {"training_sets": 4}, "search": {"metric": "bv/expected_error"}})
    assert spec.bias_variance.points == 101
    assert spec_from_dict({"name": "s", "train": {"snapshot_ensemble": 2, "schedule": {"name": "sgdr"}}}).train.snapshot_ensemble == 2
    assert "bias_variance" not in spec_from_dict({"name": "s"}).to_dict()  # absent sections stay out of the hash
