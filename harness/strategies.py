"""Strategy registries: searchers (what to try next), schedulers (when to stop a trial early),
and the named presets that pair them.

Factories import Ray lazily so that validating a spec stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from lightning_modules.registry import Registry

if TYPE_CHECKING:
    from harness.spec import StudySpec


@dataclass(frozen=True)
class SearcherEntry:
    """`build(spec)` returns a Ray Tune search algorithm; `grid` enumerates instead of sampling."""

    build: Callable[["StudySpec"], Any]
    grid: bool = False


SEARCHERS: Registry[SearcherEntry] = Registry("searcher")
SCHEDULERS: Registry[Callable[["StudySpec"], Any]] = Registry("scheduler")
STRATEGIES: Registry[tuple[str, str]] = Registry("strategy")  # name -> (searcher, scheduler)


def _basic_variants(spec: "StudySpec") -> Any:
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # Seeded: the same spec and seed give the same sequence of configurations.
    return BasicVariantGenerator(random_state=spec.seed)


SEARCHERS.register("random")(SearcherEntry(build=_basic_variants))
SEARCHERS.register("grid")(SearcherEntry(build=_basic_variants, grid=True))


def max_epochs_bound(spec: "StudySpec") -> int:
    """The most epochs any trial can run, also when `train.max_epochs` is searched."""
    dist = spec.search.space.get("train.max_epochs")
    if dist is None:
        return spec.train.max_epochs
    return int(max(dist.probe_values()))


@SCHEDULERS.register("fifo")
def fifo(spec: "StudySpec") -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


@SCHEDULERS.register("asha")
def asha(spec: "StudySpec") -> Any:
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_epochs_bound(spec),
        grace_period=spec.search.grace_period,
        reduction_factor=spec.search.reduction_factor,
    )


@SCHEDULERS.register("hyperband")
def hyperband(spec: "StudySpec") -> Any:
    from ray.tune.schedulers import HyperBandScheduler

    return HyperBandScheduler(
        time_attr="training_iteration",
        max_t=max_epochs_bound(spec),
        reduction_factor=spec.search.reduction_factor,
    )


STRATEGIES.register("grid")(("grid", "fifo"))
STRATEGIES.register("random")(("random", "fifo"))
STRATEGIES.register("asha")(("random", "asha"))
STRATEGIES.register("hyperband")(("random", "hyperband"))


def resolve_strategy(spec: "StudySpec") -> tuple[str, str]:
    """(searcher, scheduler) names: the preset's, with `search.searcher/scheduler` overriding."""
    searcher, scheduler = STRATEGIES.get(spec.search.strategy)
    return spec.search.searcher or searcher, spec.search.scheduler or scheduler
