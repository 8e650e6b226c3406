"""Ray Tune searchers and schedulers adapted to the harness: they read the study's own search
space, are seeded from the study seed, and keep their random state to themselves.

Imported only when a strategy is built (it imports Ray, Optuna and, for BOHB, hpbandster).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from ray import tune
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.search.bohb import TuneBOHB
from ray.tune.search.optuna import OptunaSearch

from harness.search.space import Choice, Grid, LogUniform, QLogUniform, QUniform, RandInt, Uniform

SCALAR_TYPES = (str, int, float)


def _scalar_choices(values: list[Any]) -> bool:
    # Optuna and ConfigSpace take plain categories; anything else (lists, mappings, bools,
    # None) is offered to them as its index.
    return all(type(v) in SCALAR_TYPES for v in values)


def _plain(value: Any) -> Any:
    """A Python scalar for a NumPy one (searcher libraries hand back np.float64, np.str_)."""
    return value.item() if isinstance(value, np.generic) else value


def _quantize(value: float, low: float, high: float, q: float) -> float:
    return float(min(max(round(value / q) * q, low), high))


class SpaceCodec:
    """The study's space as a Ray Tune space that every searcher library can convert, and the
    way back from a suggestion to the study's values.

    A choice among non-scalar values becomes a choice among indices; a quantized range its
    plain range, rounded to a multiple of q on the way back (Optuna cannot quantize a log
    range and ConfigSpace no range at all, so one rule serves both).
    """

    def __init__(self, space: dict[str, Any]) -> None:
        self.space = dict(space)

    def tune_space(self) -> dict[str, Any]:
        return {path: self._encode(dist) for path, dist in self.space.items()}

    @staticmethod
    def _encode(dist: Any) -> Any:
        if isinstance(dist, (Choice, Grid)):
            values = dist.probe_values()
            return tune.choice(values if _scalar_choices(values) else list(range(len(values))))
        if isinstance(dist, QUniform):
            return tune.uniform(*dist.quniform[:2])
        if isinstance(dist, QLogUniform):
            return tune.loguniform(*dist.qloguniform[:2])
        return dist.to_tune()

    def decode(self, config: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for path, value in config.items():
            dist = self.space.get(path)
            value = _plain(value)
            if isinstance(dist, (Choice, Grid)) and not _scalar_choices(dist.probe_values()):
                value = dist.probe_values()[int(value)]
            elif isinstance(dist, QUniform):
                value = _quantize(value, *dist.quniform)
            elif isinstance(dist, QLogUniform):
                value = _quantize(value, *dist.qloguniform)
            elif isinstance(dist, RandInt):
                value = int(value)
            elif isinstance(dist, (Uniform, LogUniform)):
                value = float(value)
            out[path] = value
        return out

    def clip(self, config: dict[str, Any]) -> dict[str, Any]:
        """A PBT-perturbed config brought back inside the space (x 1.2 can leave a range)."""
        out = dict(config)
        for path, dist in self.space.items():
            if path not in out or isinstance(dist, (Choice, Grid)):
                continue
            low, high = dist.probe_values()
            value = min(max(out[path], low), high)
            if isinstance(dist, QUniform):
                value = _quantize(value, *dist.quniform)
            elif isinstance(dist, QLogUniform):
                value = _quantize(value, *dist.qloguniform)
            elif isinstance(dist, RandInt):
                value = round(value)
            out[path] = value
        return out

    def pbt_mutations(self) -> dict[str, Any]:
        """PBT's mutation table: discrete values as lists (PBT shifts to a neighbour), ranges as
        Tune domains (PBT scales by 0.8 / 1.2 or resamples)."""
        return {
            path: dist.probe_values() if isinstance(dist, (Choice, Grid)) else dist.to_tune()
            for path, dist in self.space.items()
        }


@contextmanager
def private_rng(owner: Any) -> Iterator[None]:
    """Run with `owner`'s own state in the global `random` and `np.random` generators, which
    PBT and hpbandster draw from: seeded once, saved with the owner, and not disturbed by (nor
    disturbing) anything else in the driver."""
    saved = random.getstate(), np.random.get_state()
    random.setstate(owner._py_rng_state)
    np.random.set_state(owner._np_rng_state)
    try:
        yield
    finally:
        owner._py_rng_state, owner._np_rng_state = random.getstate(), np.random.get_state()
        random.setstate(saved[0])
        np.random.set_state(saved[1])


def _seed_private_rng(owner: Any, seed: int) -> None:
    owner._py_rng_state = random.Random(seed).getstate()
    owner._np_rng_state = np.random.RandomState(seed % 2**32).get_state()


class StudyOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch over the study's space (converted once, here), returning the
    study's values. The sampler is seeded, so the same spec and seed give the same trials
    as long as results arrive in the same order."""

    def __init__(self, codec: SpaceCodec, sampler: Any, metric: str, mode: str) -> None:
        space = OptunaSearch.convert_search_space(codec.tune_space())
        super().__init__(space=space, metric=metric, mode=mode, sampler=sampler)
        self.codec = codec

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        # Tune's param_space is the same space in Tune's form; this searcher already has it.
        return True

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        return None if config is None else self.codec.decode(config)


class StudyBOHB(TuneBOHB):
    """Ray's TuneBOHB (hpbandster's KDE model) over the study's space, seeded: ConfigSpace
    samples from the seeded space, the KDE model draws from this searcher's private NumPy state."""

    def __init__(self, codec: SpaceCodec, seed: int, metric: str, mode: str) -> None:
        space = TuneBOHB.convert_search_space(codec.tune_space())
        super().__init__(space=space, metric=metric, mode=mode, seed=seed)
        self.codec = codec
        _seed_private_rng(self, seed)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict | None:
        with private_rng(self):
            config = super().suggest(trial_id)
        return None if config is None else self.codec.decode(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        with private_rng(self), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # statsmodels' KDE, about pandas
            super().on_trial_result(trial_id, result)


class SeededPBT(PopulationBasedTraining):
    """Population Based Training whose exploit/explore draws come from the study seed."""

    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _seed_private_rng(self, seed)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        with private_rng(self):
            super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        with private_rng(self):
            return super().on_trial_result(tune_controller, trial, result)
