"""The search-space DSL: one-key mappings such as `{loguniform: [1e-4, 1e-1]}`.

Each distribution validates its own bounds, lists the values that must be valid in the
spec (for checking a search path up front), and translates itself into Ray Tune's space.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag, model_validator

from lightning_modules.config import Config


def _tune() -> Any:
    # Imported on first use: validating a spec should not pay for importing Ray.
    from ray import tune

    return tune


class Choice(Config):
    """Pick one of the listed values (sampled; a grid searcher enumerates them)."""

    choice: list[Any] = Field(min_length=1)

    def to_tune(self, as_grid: bool = False) -> Any:
        return _tune().grid_search(self.choice) if as_grid else _tune().choice(self.choice)

    def probe_values(self) -> list[Any]:
        return list(self.choice)


class Grid(Config):
    """Every listed value, exhaustively under `grid`; sampled like `choice` otherwise."""

    grid: list[Any] = Field(min_length=1)

    def to_tune(self, as_grid: bool = False) -> Any:
        return _tune().grid_search(self.grid) if as_grid else _tune().choice(self.grid)

    def probe_values(self) -> list[Any]:
        return list(self.grid)


def _check_range(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"low must be < high (given low={low}, high={high})")
    if log and low <= 0:
        raise ValueError(f"a log-scale range needs low > 0 (given low={low})")


def _check_quantized(low: float, high: float, q: float) -> None:
    # Ray Tune rejects bounds that are not multiples of q; say so at validation time.
    if q <= 0:
        raise ValueError(f"q must be > 0 (given q={q})")
    for name, bound in (("low", low), ("high", high)):
        if not math.isclose(bound / q, round(bound / q)):
            raise ValueError(f"{name} must be a multiple of q (given {name}={bound}, q={q})")


class Uniform(Config):
    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _range(self) -> Uniform:
        _check_range(*self.uniform, log=False)
        return self

    def to_tune(self, as_grid: bool = False) -> Any:
        return _tune().uniform(*self.uniform)

    def probe_values(self) -> list[Any]:
        return list(self.uniform)


class LogUniform(Config):
    loguniform: tuple[float, float]

    @model_validator(mode="after")
    def _range(self) -> LogUniform:
        _check_range(*self.loguniform, log=True)
        return self

    def to_tune(self, as_grid: bool = False) -> Any:
        return _tune().loguniform(*self.loguniform)

    def probe_values(self) -> list[Any]:
        return list(self.loguniform)


class RandInt(Config):
    """Integers in [low, high): high is exclusive, as in Ray Tune and NumPy."""

    randint: tuple[int, int]

    @model_validator(mode="after")
    def _range(self) -> RandInt:
        _check_range(*self.randint, log=False)
        return self

    def to_tune(self, as_grid: bool = False) -> Any:
        return _tune().randint(*self.randint)

    def probe_values(self) -> list[Any]:
        return [self.randint[0], self.randint[1] - 1]


class QUniform(Config):
    """[low, high, q]: uniform, rounded to a multiple of q."""

    quniform: tuple[float, float, float]

    @model_validator(mode="after")
    def _range(self) -> QUniform:
        low, high, q = self.quniform
        _check_range(low, high, log=False)
        _check_quantized(low, high, q)
        return self

    def to_tune(self, as_grid: bool = False) -> Any:
        return _tune().quniform(*self.quniform)

    def probe_values(self) -> list[Any]:
        low, high, q = self.quniform
        return [low, high]


class QLogUniform(Config):
    """[low, high, q]: log-uniform, rounded to a multiple of q."""

    qloguniform: tuple[float, float, float]

    @model_validator(mode="after")
    def _range(self) -> QLogUniform:
        low, high, q = self.qloguniform
        _check_range(low, high, log=True)
        _check_quantized(low, high, q)
        return self

    def to_tune(self, as_grid: bool = False) -> Any:
        return _tune().qloguniform(*self.qloguniform)

    def probe_values(self) -> list[Any]:
        low, high, q = self.qloguniform
        return [low, high]


DISTRIBUTIONS: dict[str, type[Config]] = {
    "choice": Choice,
    "grid": Grid,
    "uniform": Uniform,
    "loguniform": LogUniform,
    "randint": RandInt,
    "quniform": QUniform,
    "qloguniform": QLogUniform,
}
DISCRETE = (Choice, Grid)


def _distribution_tag(value: Any) -> str | None:
    if isinstance(value, Config):
        return next(iter(type(value).model_fields))
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in DISTRIBUTIONS else None
    return None


Distribution = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for name, cls in DISTRIBUTIONS.items())],  # type: ignore[valid-type]
    Discriminator(
        _distribution_tag,
        custom_error_type="unknown_distribution",
        custom_error_message=(
            "a distribution is a mapping with one key, one of: " + ", ".join(DISTRIBUTIONS)
        ),
    ),
]


def to_tune_space(space: dict[str, Any], as_grid: bool) -> dict[str, Any]:
    """Ray Tune's param_space, keyed by the same dotted paths as the study's space."""
    return {path: dist.to_tune(as_grid=as_grid) for path, dist in space.items()}
