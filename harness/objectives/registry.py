"""Cheap benchmark objectives with known optima, for comparing search strategies.

A study with an `objective` section evaluates one of these functions instead of training:
its inputs are fields of the objective's config (`objective.x1`, ...), so a search space
addresses them by dotted path like any other field, and regret is exact. Each entry says
where its definition and optimum come from (see docs/strategies.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness.objectives.functions import (
    BRANIN_ARGMINS,
    BRANIN_OPTIMUM,
    H6_ARGMIN,
    H6_OPTIMUM,
    OBJECTIVE_METRIC,
    REGRET_METRIC,
    Function,
    branin_at,
    hartmann6_at,
    inputs,
    learning_curve,
    observe,
)
from lightning_modules.config import Config
from lightning_modules.registry import Registry

if TYPE_CHECKING:
    from harness.study import StudySpec

__all__ = ["OBJECTIVES", "OBJECTIVE_METRIC", "REGRET_METRIC", "ObjectiveConfig", "ObjectiveEntry", "evaluate"]


class ObjectiveConfig(Config):
    """Every objective takes Gaussian observation noise: `noise` is its standard deviation."""

    name: str  # each entry narrows this to its own name, the union's tag
    noise: float = Field(0.0, ge=0.0, description="standard deviation of Gaussian noise on each reported value")
    cost_s: float = Field(
        0.0, ge=0.0, le=60.0,
        description="seconds each epoch takes, slept: an expensive trial that leaves the CPU to the searcher",
    )

    def inputs(self) -> list[float]:
        """The function's arguments, in order (the fields named x1, x2, ...)."""
        return inputs(self.model_dump())


@dataclass(frozen=True)
class ObjectiveEntry:
    """`evaluate(x, epoch, budget)` is the noise-free value after `epoch` of `budget` epochs;
    `optimum` its global minimum at full budget, reached at every point of `argmins`."""

    config: type[ObjectiveConfig]
    evaluate: Function
    optimum: float
    argmins: tuple[tuple[float, ...], ...]
    source: str
    multi_fidelity: bool = False


OBJECTIVES: Registry[ObjectiveEntry] = Registry("objective", tag="name")

SSURJANO = "Surjanovic & Bingham, Virtual Library of Simulation Experiments"


class BraninConfig(ObjectiveConfig):
    name: Literal["branin"] = "branin"
    x1: float = Field(2.5, ge=-5.0, le=10.0)
    x2: float = Field(7.5, ge=0.0, le=15.0)


OBJECTIVES.register("branin")(
    ObjectiveEntry(
        config=BraninConfig,
        evaluate=branin_at,
        optimum=BRANIN_OPTIMUM,
        argmins=BRANIN_ARGMINS,
        source=f"Branin (1972); Dixon & Szegő (1978); {SSURJANO}",
    )
)


class _UnitCube6(ObjectiveConfig):
    x1: float = Field(0.5, ge=0.0, le=1.0)
    x2: float = Field(0.5, ge=0.0, le=1.0)
    x3: float = Field(0.5, ge=0.0, le=1.0)
    x4: float = Field(0.5, ge=0.0, le=1.0)
    x5: float = Field(0.5, ge=0.0, le=1.0)
    x6: float = Field(0.5, ge=0.0, le=1.0)


class Hartmann6Config(_UnitCube6):
    name: Literal["hartmann6"] = "hartmann6"


OBJECTIVES.register("hartmann6")(
    ObjectiveEntry(
        config=Hartmann6Config,
        evaluate=hartmann6_at,
        optimum=H6_OPTIMUM,
        argmins=(H6_ARGMIN,),
        source=f"Hartmann (1973); Dixon & Szegő (1978); {SSURJANO}",
    )
)


class LearningCurveConfig(_UnitCube6):
    name: Literal["learning_curve"] = "learning_curve"


OBJECTIVES.register("learning_curve")(
    ObjectiveEntry(
        config=LearningCurveConfig,
        evaluate=learning_curve,
        optimum=H6_OPTIMUM,
        argmins=(H6_ARGMIN,),
        source="Hartmann-6 at full budget; the learning-curve term is defined here, power-law shaped "
        "after Domhan, Springenberg & Hutter (2015)",
        multi_fidelity=True,
    )
)


def evaluate(config: ObjectiveConfig, seed: int, epoch: int, budget: int) -> dict[str, float]:
    """What a trial reports after `epoch` of `budget` epochs: the observed (noisy) value and
    the noise-free regret against the known optimum."""
    entry = OBJECTIVES.get(config.name)
    return observe(entry.evaluate, entry.optimum, config.model_dump(mode="json"), seed, epoch, budget)


def objective_problems(spec: StudySpec) -> list[str]:
    """What makes a study's `objective` section and its search settings disagree."""
    problems = []
    search = spec.search
    if spec.objective is None:
        if search.metric == OBJECTIVE_METRIC:
            problems.append(f"search.metric: {OBJECTIVE_METRIC} needs an `objective` section (given {search.metric!r})")
        return problems
    if search.metric != OBJECTIVE_METRIC:
        problems.append(f"search.metric: an objective study reports {OBJECTIVE_METRIC}; given {search.metric!r}")
    if search.mode != "min":
        problems.append(f"search.mode: objectives are minimized, so mode must be 'min' (given {search.mode!r})")
    if "objective.name" in search.space:
        problems.append("search.space.objective.name: cannot be searched; search the objective's inputs instead")
    return problems
