"""The search-space DSL and its translation into Ray Tune's space."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from ray import tune
from ray.tune.search.sample import Categorical, Float, Integer

from harness.search.space import Distribution, to_tune_space

parse = TypeAdapter(Distribution).validate_python


@pytest.mark.parametrize(
    ("raw", "domain", "probe"),
    [
        ({"choice": [1, 2, 3]}, Categorical, [1, 2, 3]),
        ({"uniform": [0.0, 0.5]}, Float, [0.0, 0.5]),
        ({"loguniform": [1e-4, 1e-1]}, Float, [1e-4, 1e-1]),
        ({"randint": [2, 6]}, Integer, [2, 5]),
        ({"quniform": [0.1, 0.5, 0.1]}, Float, [0.1, 0.5]),
        ({"qloguniform": [1e-3, 1.0, 1e-3]}, Float, [1e-3, 1.0]),
    ],
)
def test_each_distribution_translates(raw, domain, probe):
    dist = parse(raw)
    assert isinstance(dist.to_tune(), domain)
    assert dist.probe_values() == probe


def test_grid_and_choice_enumerate_under_grid():
    for raw in ({"grid": [1, 2]}, {"choice": [1, 2]}):
        assert parse(raw).to_tune(as_grid=True) == tune.grid_search([1, 2])
        assert isinstance(parse(raw).to_tune(as_grid=False), Categorical)


def test_samples_stay_in_range():
    rng = np.random.default_rng(0)
    log = parse({"loguniform": [1e-4, 1e-1]}).to_tune()
    values = np.asarray(log.sample(size=500, random_state=rng))
    assert values.min() >= 1e-4 and values.max() <= 1e-1
    # log-uniform: about half the mass below the geometric mean
    assert 0.4 < np.mean(values < np.sqrt(1e-4 * 1e-1)) < 0.6
    ints = np.asarray(parse({"randint": [2, 6]}).to_tune().sample(size=200, random_state=rng))
    assert set(ints.tolist()) == {2, 3, 4, 5}


def test_space_keys_keep_dotted_paths():
    space = to_tune_space({"model.dropout": parse({"uniform": [0, 0.5]})}, as_grid=False)
    assert list(space) == ["model.dropout"]


@pytest.mark.parametrize(
    "raw",
    [
        {"uniform": [1.0, 0.0]},
        {"loguniform": [-1.0, 1.0]},
        {"randint": [3, 3]},
        {"choice": []},
        {"uniform": [0, 1], "choice": [1]},
        {"beta": [1, 2]},
        {"quniform": [0.05, 0.5, 0.1]},
    ],
)
def test_invalid_distributions_fail(raw):
    with pytest.raises(ValidationError):
        parse(raw)
