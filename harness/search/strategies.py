"""Strategy registries: searchers (what to try next), schedulers (when to stop a trial early),
and the named presets that pair them; plus the checks that a pairing fits the study.

Factories import Ray and Optuna lazily so that validating a spec stays cheap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from lightning_modules.registry import Registry

if TYPE_CHECKING:
    from harness.study import StudySpec

Check = Callable[["StudySpec"], list[str]]
EpochSet = Callable[[int], bool]  # is this epoch (1-based) in the set


def _no_problems(spec: StudySpec) -> list[str]:
    return []


def _no_epoch(epoch: int) -> bool:
    return False


@dataclass(frozen=True)
class SearcherEntry:
    """`build(spec)` returns a Ray Tune search algorithm; `grid` enumerates instead of sampling.

    `needs_space`: a model-based searcher has nothing to model without a searched field;
    `scheduler`: the one scheduler it works with, if any; `check`: further problems.
    """

    build: Callable[[StudySpec], Any]
    grid: bool = False
    needs_space: bool = False
    scheduler: str | None = None
    check: Check = _no_problems
    summary: str = ""
    multi_objective: bool = False  # it searches several objectives at once (a Pareto front)


@dataclass(frozen=True)
class SchedulerEntry:
    """`build(spec)` (or calling the entry) returns a Ray Tune trial scheduler.

    `searchers`: the only searchers it works with, if limited; `stops_early`: it stops trials
    between epochs, so trials need several; `uses_grace_period`: it never stops a trial
    before `search.grace_period` epochs; `keeps_every_checkpoint`: a trial's older checkpoints
    stay (otherwise the harness deletes those no saved experiment state can name);
    `resumable`: its bookkeeping is keyed by trial id, so the harness saves it with the
    experiment and `harness resume` restores it (Ray Tune does neither for any scheduler);
    `acts_after(spec)`: the epochs after which it may stop, pause or exploit a trial, which
    therefore get a checkpoint (a trial stopped there keeps its final weights, one paused or
    exploited continues from that very epoch); `check`: further problems.
    """

    build: Callable[[StudySpec], Any]
    searchers: tuple[str, ...] | None = None
    stops_early: bool = False
    uses_grace_period: bool = False
    keeps_every_checkpoint: bool = False
    resumable: bool = False
    acts_after: Callable[[StudySpec], EpochSet] = lambda spec: _no_epoch
    check: Check = _no_problems
    summary: str = ""

    def __call__(self, spec: StudySpec) -> Any:
        return self.build(spec)


def _every_epoch(spec: StudySpec) -> EpochSet:
    return lambda epoch: True


def _after_grace(spec: StudySpec) -> EpochSet:
    return lambda epoch: epoch >= spec.search.grace_period


def _asha_rungs(spec: StudySpec) -> EpochSet:
    # ASHAScheduler's rungs (one bracket): grace_period * reduction_factor**k up to max_t; a
    # trial is judged on its first result at or past a rung.
    rungs, k = set(), 0
    while (rung := spec.search.grace_period * spec.search.reduction_factor**k) <= max_epochs_bound(spec):
        rungs.add(math.ceil(rung))
        k += 1
    return rungs.__contains__


def _pbt_intervals(spec: StudySpec) -> EpochSet:
    return lambda epoch: epoch % spec.search.perturbation_interval == 0


SEARCHERS: Registry[SearcherEntry] = Registry("searcher")
SCHEDULERS: Registry[SchedulerEntry] = Registry("scheduler")
STRATEGIES: Registry[tuple[str, str]] = Registry("strategy")  # name -> (searcher, scheduler)


def searcher_seed(spec: StudySpec) -> int:
    # NumPy-based samplers take seeds in [0, 2**32); any study seed maps into that range.
    return spec.seed % 2**32


def max_epochs_bound(spec: StudySpec) -> int:
    """The most epochs any trial can run, also when `train.max_epochs` is searched (or, in a
    compression study, a step's epochs or rounds)."""
    if spec.compress is not None:
        longest = {
            path: max(dist.probe_values())
            for path, dist in spec.search.space.items()
            if path.startswith("compress.") and path.rsplit(".", 1)[-1] in ("epochs", "rounds", "finetune_epochs")
        }
        return spec.with_values(longest).compress.epochs()
    dist = spec.search.space.get("train.max_epochs")
    if dist is None:
        return spec.train.max_epochs
    return int(max(dist.probe_values()))


def _codec(spec: StudySpec) -> Any:
    from harness.search.adapters import SpaceCodec

    return SpaceCodec(spec.search.space)


# --- searchers ---------------------------------------------------------------------------


def _basic_variants(spec: StudySpec) -> Any:
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # Seeded: the same spec and seed give the same sequence of configurations. Ray Tune
    # applies `max_concurrent_trials` only to Searchers; this generator takes its own cap.
    return BasicVariantGenerator(random_state=spec.seed, max_concurrent=spec.search.max_concurrent_trials or 0)


SEARCHERS.register("random")(SearcherEntry(build=_basic_variants, summary="seeded random sampling", multi_objective=True))
SEARCHERS.register("grid")(
    SearcherEntry(build=_basic_variants, grid=True, summary="every combination of choice/grid values", multi_objective=True)
)


def _noise_free_objective(spec: StudySpec) -> bool:
    return spec.objective is not None and spec.objective.noise == 0


def _optuna(make_sampler: Callable[[StudySpec], Any]) -> Callable[[StudySpec], Any]:
    def build(spec: StudySpec) -> Any:
        import optuna

        from harness.search.adapters import StudyOptunaSearch

        # Optuna logs every finished trial at INFO; the harness shows its own progress.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        objectives = spec.search.objectives
        if objectives:  # Optuna's study gets one direction per objective
            return StudyOptunaSearch(
                _codec(spec), make_sampler(spec), [o.metric for o in objectives], [o.mode for o in objectives]
            )
        return StudyOptunaSearch(_codec(spec), make_sampler(spec), spec.search.metric, spec.search.mode)

    return build


def _tpe(spec: StudySpec) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=searcher_seed(spec))


def _gp(spec: StudySpec) -> Any:
    import optuna

    with warnings.catch_warnings():
        # `deterministic_objective` is marked experimental; the harness pins the Optuna series.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A noise-free objective lets the GP interpolate its observations exactly.
        return optuna.samplers.GPSampler(
            seed=searcher_seed(spec), deterministic_objective=_noise_free_objective(spec)
        )


def _cmaes(spec: StudySpec) -> Any:
    import optuna

    # Categorical fields are sampled independently (seeded random); that is expected, not news.
    return optuna.samplers.CmaEsSampler(seed=searcher_seed(spec), warn_independent_sampling=False)


SEARCHERS.register("tpe")(SearcherEntry(build=_optuna(_tpe), needs_space=True, summary="Optuna TPESampler"))
SEARCHERS.register("gp")(
    SearcherEntry(build=_optuna(_gp), needs_space=True, summary="Optuna GPSampler (Gaussian-process BO)")
)
SEARCHERS.register("cmaes")(SearcherEntry(build=_optuna(_cmaes), needs_space=True, summary="Optuna CmaEsSampler"))


def _nsga2(spec: StudySpec) -> Any:
    from harness.search.savable_samplers import SavableNSGAIISampler

    return SavableNSGAIISampler(seed=searcher_seed(spec))


SEARCHERS.register("nsga2")(
    SearcherEntry(build=_optuna(_nsga2), needs_space=True, multi_objective=True, summary="Optuna NSGAIISampler (Pareto search)")
)
SEARCHERS.register("motpe")(
    SearcherEntry(build=_optuna(_tpe), needs_space=True, multi_objective=True,
                  summary="Optuna TPESampler over several objectives (MOTPE)")
)
SEARCHERS.register("mogp")(
    SearcherEntry(build=_optuna(_gp), needs_space=True, multi_objective=True,
                  summary="Optuna GPSampler over several objectives")
)


def _bohb_search(spec: StudySpec) -> Any:
    from harness.search.adapters import StudyBOHB

    return StudyBOHB(_codec(spec), searcher_seed(spec), spec.search.metric, spec.search.mode)


SEARCHERS.register("bohb")(
    SearcherEntry(
        build=_bohb_search, needs_space=True, scheduler="bohb", summary="TuneBOHB (hpbandster's TPE-like KDE model)"
    )
)


# --- schedulers --------------------------------------------------------------------------


def _fifo(spec: StudySpec) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def _asha(spec: StudySpec) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_epochs_bound(spec),
        grace_period=spec.search.grace_period,
        reduction_factor=spec.search.reduction_factor,
    )


def _hyperband(spec: StudySpec) -> Any:
    from harness.search.resumable_hyperband import ResumableHyperBand

    return ResumableHyperBand(
        time_attr="training_iteration",
        max_t=max_epochs_bound(spec),
        reduction_factor=spec.search.reduction_factor,
    )


def _median(spec: StudySpec) -> Any:
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(
        time_attr="training_iteration", grace_period=float(spec.search.grace_period), min_samples_required=3
    )


def _bohb_scheduler(spec: StudySpec) -> Any:
    from harness.search.resumable_hyperband import ResumableHyperBandForBOHB

    return ResumableHyperBandForBOHB(
        time_attr="training_iteration",
        max_t=max_epochs_bound(spec),
        reduction_factor=spec.search.reduction_factor,
    )


def _pbt(spec: StudySpec) -> Any:
    from harness.search.adapters import SeededPBT

    codec = _codec(spec)
    return SeededPBT(
        searcher_seed(spec),
        time_attr="training_iteration",
        perturbation_interval=spec.search.perturbation_interval,
        hyperparam_mutations=codec.pbt_mutations(),
        custom_explore_fn=codec.clip,
        # Synchronous: every trial reaches a perturbation point before the bottom quantile
        # exploits, so what is exploited depends on the seed and the results, not on timing.
        synch=True,
    )


# What PBT may change in a running trial: values that a restored checkpoint can take on as
# they are (optimizer settings, dropout rates, an objective's inputs). A layer's width or the
# data cannot change under a checkpoint.
PBT_MUTABLE = (
    "train.optimizer.lr",
    "train.optimizer.weight_decay",
    "train.optimizer.momentum",
    "model.*dropout*",
    "objective.x*",
    "objective.noise",
)


def _pbt_problems(spec: StudySpec) -> list[str]:
    problems = []
    for path in spec.search.space:
        if not any(fnmatchcase(path, pattern) for pattern in PBT_MUTABLE):
            problems.append(
                f"search.space.{path}: the pbt scheduler changes values of running trials, which continue "
                f"from their checkpoints; it can mutate only: {', '.join(PBT_MUTABLE)}"
            )
    epochs = max_epochs_bound(spec)
    if spec.search.perturbation_interval >= epochs:
        problems.append(
            f"search.perturbation_interval: must be < the epochs of a trial ({epochs}) for pbt to perturb "
            f"anything (given {spec.search.perturbation_interval})"
        )
    if not spec.search.space:
        problems.append("search.space: the pbt scheduler needs at least one searched field to mutate (given none)")
    return problems


SCHEDULERS.register("fifo")(SchedulerEntry(build=_fifo, summary="runs every trial to the end"))
SCHEDULERS.register("asha")(
    SchedulerEntry(
        build=_asha, stops_early=True, uses_grace_period=True, resumable=True, acts_after=_asha_rungs,
        summary="asynchronous successive halving",
    )
)
# HyperBand pauses trials at its brackets' milestones and resumes them later, so every epoch may
# be one it continues from; the median rule may stop a trial at any epoch past the grace period.
SCHEDULERS.register("hyperband")(
    SchedulerEntry(
        build=_hyperband, stops_early=True, resumable=True, acts_after=_every_epoch, summary="HyperBand brackets"
    )
)
SCHEDULERS.register("median")(
    SchedulerEntry(
        build=_median,
        stops_early=True,
        uses_grace_period=True,
        acts_after=_after_grace,
        summary="stops a trial below the median of others at the same epoch",
    )
)
SCHEDULERS.register("bohb")(
    SchedulerEntry(
        build=_bohb_scheduler, searchers=("bohb",), stops_early=True, resumable=True, acts_after=_every_epoch,
        summary="HyperBandForBOHB",
    )
)
SCHEDULERS.register("pbt")(
    SchedulerEntry(
        build=_pbt,
        searchers=("random",),
        # A trial may exploit another's checkpoint after that trial has saved newer ones.
        keeps_every_checkpoint=True,
        acts_after=_pbt_intervals,
        check=_pbt_problems,
        summary="Population Based Training, random init",
    )
)


# --- presets -----------------------------------------------------------------------------

STRATEGIES.register("grid")(("grid", "fifo"))
STRATEGIES.register("random")(("random", "fifo"))
STRATEGIES.register("tpe")(("tpe", "fifo"))
STRATEGIES.register("gp")(("gp", "fifo"))
STRATEGIES.register("cmaes")(("cmaes", "fifo"))
STRATEGIES.register("asha")(("random", "asha"))
STRATEGIES.register("hyperband")(("random", "hyperband"))
STRATEGIES.register("median")(("random", "median"))
STRATEGIES.register("bohb")(("bohb", "bohb"))
STRATEGIES.register("pbt")(("random", "pbt"))
STRATEGIES.register("nsga2")(("nsga2", "fifo"))
STRATEGIES.register("motpe")(("motpe", "fifo"))
STRATEGIES.register("mogp")(("mogp", "fifo"))


def multi_objective_strategies() -> list[str]:
    """The strategy presets that search several objectives (their trials all run to the end)."""
    return [
        name for name in STRATEGIES.names()
        if SEARCHERS.get(STRATEGIES.get(name)[0]).multi_objective and STRATEGIES.get(name)[1] == "fifo"
    ]


def resolve_strategy(spec: StudySpec) -> tuple[str, str]:
    """(searcher, scheduler) names: the preset's, with `search.searcher/scheduler` overriding."""
    searcher, scheduler = STRATEGIES.get(spec.search.strategy)
    return spec.search.searcher or searcher, spec.search.scheduler or scheduler


def strategy_problems(spec: StudySpec) -> list[str]:
    """Why the study's searcher and scheduler cannot run it (or each other), if they cannot."""
    searcher_name, scheduler_name = resolve_strategy(spec)
    searcher, scheduler = SEARCHERS.get(searcher_name), SCHEDULERS.get(scheduler_name)
    problems = []
    if spec.search.objectives and not searcher.multi_objective:
        several = [name for name in SEARCHERS.names() if SEARCHERS.get(name).multi_objective]
        problems.append(
            f"search.strategy: the {searcher_name} searcher optimizes one metric; with several objectives use one of: "
            f"{', '.join(several)} (given {spec.search.strategy!r})"
        )
    elif spec.search.objectives and scheduler_name != "fifo":
        field, given = ("search.scheduler", scheduler_name) if spec.search.scheduler else ("search.strategy", spec.search.strategy)
        problems.append(
            f"{field}: the {scheduler_name} scheduler ranks trials by one metric; with several objectives trials run "
            f"to the end (strategies: {', '.join(multi_objective_strategies())}) (given {given!r})"
        )
    if searcher.needs_space and not spec.search.space:
        problems.append(f"search.space: the {searcher_name} searcher needs at least one searched field (given none)")
    if searcher.scheduler is not None and scheduler_name != searcher.scheduler:
        problems.append(
            f"search.scheduler: the {searcher_name} searcher works only with the {searcher.scheduler} scheduler "
            f"(given {scheduler_name!r})"
        )
    if scheduler.searchers is not None and searcher_name not in scheduler.searchers:
        problems.append(
            f"search.searcher: the {scheduler_name} scheduler works only with the {' or '.join(scheduler.searchers)} "
            f"searcher (given {searcher_name!r})"
        )
    epochs = max_epochs_bound(spec)
    if scheduler.uses_grace_period and epochs <= spec.search.grace_period:
        problems.append(
            f"search.grace_period: the {scheduler_name} scheduler stops trials only after grace_period epochs, so "
            f"trials need more epochs than that (train.max_epochs {epochs}, grace_period {spec.search.grace_period})"
        )
    elif scheduler.stops_early and epochs < 2:
        problems.append(
            f"train.max_epochs: the {scheduler_name} scheduler stops trials between epochs; trials need at least "
            f"2 (given {epochs})"
        )
    return problems + searcher.check(spec) + scheduler.check(spec)
