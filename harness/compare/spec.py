"""The comparison spec: the base study (a file beside it, or inline), the strategies (presets
such as `tpe`, or `searcher+scheduler` such as `tpe+asha`), the seeds, one budget for every
execution (trials, total epochs or wall-clock seconds), an optional target and the baseline;
loading it checks every study it derives before anything runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from harness.errors import SpecError
from harness.objectives import OBJECTIVE_METRIC, OBJECTIVES
from harness.run.plan import StudyPlan
from harness.run.preflight import data_problems
from harness.search import SCHEDULERS, SEARCHERS, STRATEGIES
from harness.study import StudySpec, check_search_space, format_errors
from harness.study.reading import read_yaml_mapping
from lightning_modules.config import Config

# A time budget leaves the number of trials open: the study samples until the time is spent.
UNBOUNDED_TRIALS = 100_000


# --- the spec ----------------------------------------------------------------------------


class BudgetSpec(Config):
    """Exactly one limit, the same for every execution."""

    trials: int | None = Field(None, ge=1, description="trials per execution (search.num_trials)")
    epochs: int | None = Field(None, ge=1, description="epochs of all trials together (search.budget_epochs)")
    seconds: float | None = Field(None, gt=0, description="wall-clock seconds of search (search.time_budget_s)")

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetSpec:
        given = [key for key in ("trials", "epochs", "seconds") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of trials, epochs, seconds (given {', '.join(given) or 'none'})")
        return self

    @property
    def axis(self) -> Literal["trials", "epochs", "seconds"]:
        """The budget's unit, also the axis the report ranks strategies on."""
        return next(key for key in ("trials", "epochs", "seconds") if getattr(self, key) is not None)  # type: ignore[return-value]

    @property
    def amount(self) -> float:
        return float(getattr(self, self.axis))

    def label(self) -> str:
        return f"{self.amount:g} {self.axis}"


def split_strategy(name: str) -> tuple[str, str | None, str | None]:
    """(preset, searcher, scheduler) of a strategy name: a preset (`tpe`) keeps its own parts;
    `searcher+scheduler` (`tpe+asha`) sets both on top of the `random` preset."""
    if "+" not in name:
        return STRATEGIES.check(name), None, None
    searcher, _, scheduler = name.partition("+")
    if searcher not in SEARCHERS or scheduler not in SCHEDULERS:
        raise ValueError(
            f"unknown searcher+scheduler {name!r}; searchers: {', '.join(SEARCHERS.names())}; "
            f"schedulers: {', '.join(SCHEDULERS.names())}"
        )
    return "random", searcher, scheduler


class ComparisonSpec(Config):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    study: str | dict[str, Any] = Field(description="the base study: a file path relative to this file, or inline")
    strategies: list[str] = Field(min_length=1)
    seeds: int | list[int] = Field(description="a list of seeds, or a count n meaning 0..n-1")
    budget: BudgetSpec
    target: float | None = None
    baseline: str = "random"
    parallel: int | Literal["auto"] = Field(
        "auto",
        description="executions at once: a number, or auto (as many as the cluster's CPUs keep busy; "
        "1 for a budget in seconds, which contention would make unequal)",
    )

    @field_validator("parallel")
    @classmethod
    def _parallel(cls, parallel: int | str) -> int | str:
        if isinstance(parallel, int) and not 1 <= parallel <= 1000:
            raise ValueError("a number of executions at once must be between 1 and 1000, or auto")
        return parallel

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, names: list[str]) -> list[str]:
        problems = []
        for i, name in enumerate(names):
            try:
                split_strategy(name)
            except ValueError as exc:
                problems.append(f"strategies[{i}]: {exc}")
            if name in names[:i]:
                problems.append(f"strategies[{i}]: {name!r} is listed twice")
        if problems:
            raise ValueError("; ".join(problems))
        return names

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and seeds < 1:
            raise ValueError("a count of seeds must be >= 1")
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError("a list of seeds must be non-empty and without repeats")
        return seeds

    @model_validator(mode="after")
    def _baseline_is_compared(self) -> ComparisonSpec:
        if self.baseline not in self.strategies:
            raise ValueError(
                f"baseline: {self.baseline!r} is not among the strategies ({', '.join(self.strategies)}); "
                "add it to strategies or name one of them"
            )
        return self

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def base_study(self) -> dict[str, Any]:
        assert isinstance(self.study, dict), "load_comparison resolves the study file"
        return self.study

    def study_for(self, strategy: str, seed: int) -> StudySpec:
        """The execution's study spec (validated by `load_comparison` already)."""
        return StudySpec.model_validate(derive_study(self, strategy, seed))


def derive_study(spec: ComparisonSpec, strategy: str, seed: int) -> dict[str, Any]:
    """The base study with the comparison's name (its MLflow experiment), the seed, the
    strategy and the budget set; the base's own strategy and budgets are replaced."""
    raw = copy.deepcopy(spec.base_study())
    raw["name"], raw["seed"] = spec.name, seed
    search = raw.setdefault("search", {})
    if not isinstance(search, dict):
        return raw  # validation reports it
    preset, searcher, scheduler = split_strategy(strategy)
    search.update(strategy=preset, searcher=searcher, scheduler=scheduler, budget_epochs=None, time_budget_s=None)
    budget = spec.budget
    if budget.trials is not None:
        search["num_trials"] = budget.trials
    elif budget.epochs is not None:
        # Every trial runs at least one epoch, so no more trials than epochs can fit.
        search.update(num_trials=budget.epochs, budget_epochs=budget.epochs)
    else:
        search.update(num_trials=UNBOUNDED_TRIALS, time_budget_s=budget.seconds)
    return raw


# --- loading and checking ------------------------------------------------------------------


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "comparison"


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if message.startswith(("strategies[", "baseline:")):
            lines.append(message)  # the validator named the field itself
            continue
        path = _loc(tuple(p for p in err["loc"] if not str(p).startswith("function-")))
        if err["loc"][:1] == ("seeds",) and len(err["loc"]) > 1:
            # Each member of the int | list union failed: one line, given the value as written.
            if err["loc"][1] == "int":
                lines.append(f"seeds: a count n (seeds 0..n-1) or a list of integer seeds (given {err['input']!r})")
        elif err["loc"][:1] == ("parallel",):
            # Both members of the int | "auto" union failed, or the range check did: one line.
            lines.append(f"parallel: a number of executions at once (1 to 1000) or auto (given {err['input']!r})")
        elif err["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(ComparisonSpec.model_fields))
            if err["loc"][0] == "budget":
                allowed = ", ".join(sorted(BudgetSpec.model_fields))
            lines.append(f"{path}: unknown key; allowed keys: {allowed}")
        else:
            given = repr(err.get("input"))
            lines.append(f"{path}: {message} (given {given if len(given) <= 80 else given[:77] + '...'})")
    return "\n".join(dict.fromkeys(lines))


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    return read_yaml_mapping(path, what)


def load_comparison(path: str | Path) -> ComparisonSpec:
    """Read and validate a comparison file and every study it derives; raise SpecError naming
    the comparison's field path (`strategies[2]`, `budget.trials`, `study.model.kind`, ...)."""
    path = Path(path)
    raw = _read_mapping(path, "comparison file")
    try:
        spec = ComparisonSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: invalid comparison\n{_format(exc)}") from None
    where = "study"
    if isinstance(spec.study, str):
        study_path = (path.parent / spec.study).resolve()
        where = f"study ({spec.study})"
        if not study_path.is_file():
            raise SpecError(
                f"{path}: invalid comparison\nstudy: no file {study_path} (paths are relative to {path.parent})"
            )
        spec = spec.model_copy(update={"study": _read_mapping(study_path, "study file")})
    problems = comparison_problems(spec, where)
    if problems:
        raise SpecError(f"{path}: invalid comparison\n" + "\n".join(problems))
    return spec


def _study_problems(raw: dict[str, Any]) -> tuple[list[str], StudySpec | None]:
    try:
        study = StudySpec.model_validate(raw)
    except ValidationError as exc:
        return format_errors(exc).splitlines(), None
    try:
        check_search_space(study)
    except SpecError as exc:
        return str(exc).splitlines(), None
    problems = data_problems(study)
    return problems, None if problems else study


def comparison_problems(spec: ComparisonSpec, where: str = "study") -> list[str]:
    """Everything that would make an execution fail or the comparison unfair, by field path."""
    seeds = spec.seed_list()
    blocks: list[list[str]] = []
    studies: list[StudySpec] = []
    for strategy in spec.strategies:
        # Executions differ from the first seed's only in `seed`, which takes any integer: the
        # search-space and strategy checks (which may load the dataset) run once per strategy.
        lines, study = _study_problems(derive_study(spec, strategy, seeds[0]))
        if study is not None:
            studies.append(study)
            lines += _budget_problems(spec, study)
            for seed in seeds[1:]:
                lines += _study_problems_quick(derive_study(spec, strategy, seed))
        blocks.append(lines)
    # A problem under every strategy is the base study's own: say it once, at the study.
    common = [line for line in blocks[0] if all(line in block for block in blocks)] if len(blocks) > 1 else []
    sep = "." if where == "study" else ": "
    problems = [f"{where}{sep}{line}" for line in common]
    for i, lines in enumerate(blocks):
        problems += [f"strategies[{i}] ({spec.strategies[i]}): {line}" for line in lines if line not in common]
    if studies:
        problems += _target_problems(spec, studies[0])
    return problems


def _study_problems_quick(raw: dict[str, Any]) -> list[str]:
    try:
        StudySpec.model_validate(raw)
    except ValidationError as exc:
        return format_errors(exc).splitlines()
    return []


def _budget_problems(spec: ComparisonSpec, study: StudySpec) -> list[str]:
    budget, problems = spec.budget, []
    plan = StudyPlan.of(study)
    if plan.searcher.grid and budget.trials is not None and plan.expected_trials > budget.trials:
        problems.append(
            f"the grid has {plan.expected_trials} points, more than budget.trials ({budget.trials}); "
            "a grid runs every point, so raise the budget or shrink the grid"
        )
    if plan.scheduler_name == "pbt" and budget.trials is None:
        problems.append("pbt trains a population of search.num_trials trials; give it a budget in trials")
    epochs = plan.max_epochs
    if budget.epochs is not None and budget.epochs < epochs:
        problems.append(
            f"budget.epochs: {budget.epochs} is fewer than one trial's epochs (train.max_epochs {epochs}); "
            "no trial could finish"
        )
    return problems


def optimum_of(study: StudySpec) -> float | None:
    """The known optimum of an objective study's function; None for a training study."""
    return None if study.objective is None else OBJECTIVES.get(study.objective.name).optimum


def _target_problems(spec: ComparisonSpec, study: StudySpec) -> list[str]:
    target, metric, mode = spec.target, study.search.metric, study.search.mode
    if target is None:
        return []
    given = f"(given {target:g}; metric {metric}, mode {mode})"
    if metric.endswith("/loss") and target < 0:
        return [f"target: a loss is never negative, so no strategy can reach it {given}"]
    if metric.endswith("/acc") and not 0 <= target <= 1:
        return [f"target: an accuracy lies in [0, 1] {given}"]
    optimum = optimum_of(study)
    if metric == OBJECTIVE_METRIC and optimum is not None and target < optimum:
        name = study.objective.name if study.objective else metric
        return [f"target: below the known optimum of {name} ({optimum:.6g}), so no strategy can reach it {given}"]
    return []
