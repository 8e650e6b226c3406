"""`harness compare`: one base study under several strategies and seeds, on one budget.

A comparison spec (YAML) names the base study (a file beside it, or inline), the strategies
(presets such as `tpe`, or `searcher+scheduler` such as `tpe+asha`), the seeds, one budget for
every execution (trials, total epochs or wall-clock seconds), an optional target value and the
baseline strategy. Each (strategy, seed) is one study execution, run one after another, whose
MLflow run is nested under the comparison's run. A state file in the comparison folder records
each execution's study folder and status, so that `harness resume FOLDER` continues the whole
comparison. The report is built by the caller (the CLI) from what MLflow stored.
"""

from __future__ import annotations

import copy
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

import harness
from harness.errors import SpecError
from harness.objectives import OBJECTIVE_METRIC, OBJECTIVES
from harness.paths import default_artifact_root, default_tracking_uri, harness_home
from harness.runner import STATE_FILE as STUDY_STATE_FILE
from harness.runner import expected_trials, init_ray, resume_study, run_study
from harness.spec import StudySpec, check_search_space, format_errors
from harness.strategies import SCHEDULERS, SEARCHERS, STRATEGIES, max_epochs_bound, resolve_strategy
from harness.tracking import (
    FAILED,
    KILLED,
    StudyRun,
    client_for,
    ensure_experiment,
    finish_study_run,
    git_commit,
    reopen_study_run,
)
from lightning_modules.config import Config

STATE_FILE = "harness_comparison.json"
PENDING, RUNNING, INTERRUPTED, FINISHED = "pending", "running", "interrupted", "finished"
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
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a {what} is a mapping of keys, given {type(raw).__name__}")
    return raw


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
    return [], study


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
    searcher, scheduler = resolve_strategy(study)
    if SEARCHERS.get(searcher).grid and budget.trials is not None and expected_trials(study) > budget.trials:
        problems.append(
            f"the grid has {expected_trials(study)} points, more than budget.trials ({budget.trials}); "
            "a grid runs every point, so raise the budget or shrink the grid"
        )
    if scheduler == "pbt" and budget.trials is None:
        problems.append("pbt trains a population of search.num_trials trials; give it a budget in trials")
    epochs = max_epochs_bound(study)
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


# --- state ---------------------------------------------------------------------------------


@dataclass
class Execution:
    """One (strategy, seed) study execution and where it stands."""

    strategy: str
    seed: int
    status: str = PENDING
    folder: str | None = None  # the study folder, once it exists (what `harness resume` takes)
    run_id: str | None = None  # its MLflow parent run


@dataclass
class ComparisonState:
    """What `harness resume FOLDER` needs: the resolved spec and every execution's progress."""

    spec: dict[str, Any]
    tracking_uri: str
    experiment_id: str
    run_id: str  # the comparison's MLflow run; its id is the comparison_id tag
    executions: list[Execution]
    reported: bool = False

    def save(self, folder: Path) -> None:
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(folder / STATE_FILE)  # atomic: a killed driver leaves the old or the new

    @classmethod
    def load(cls, folder: Path) -> ComparisonState:
        raw = json.loads((folder / STATE_FILE).read_text())
        raw["executions"] = [Execution(**e) for e in raw["executions"]]
        return cls(**raw)


def is_comparison_file(path: str | Path) -> bool:
    """Whether a YAML file reads as a comparison (it lists strategies and names a study)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False  # loading it as a study reports what is wrong
    return isinstance(raw, dict) and "strategies" in raw and "study" in raw


def is_comparison_folder(path: str | Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


# --- running -------------------------------------------------------------------------------


@dataclass
class ComparisonOutcome:
    """Where a comparison stands after `run_comparison` / `resume_comparison`, for the report."""

    folder: Path
    spec: ComparisonSpec
    tracking_uri: str
    experiment_id: str
    run_id: str
    metric: str
    mode: str
    optimum: float | None
    executions: list[Execution]
    ran: int = 0  # executions run or continued by this call
    interrupted: bool = False
    already_reported: bool = False

    @property
    def comparison_id(self) -> str:
        return self.run_id


# The caller's report: reads MLflow, writes files into the folder it is given, prints; returns
# the files and summary metrics to log on the comparison's run.
Report = Callable[[ComparisonOutcome, Path], tuple[list[Path], dict[str, float]]]


def _start_comparison_run(spec: ComparisonSpec, tracking_uri: str) -> tuple[str, str]:
    local_store = tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri
    client = client_for(tracking_uri)
    experiment_id = ensure_experiment(client, spec.name, default_artifact_root() if local_store else None)
    run = client.create_run(
        experiment_id,
        run_name=f"comparison-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={
            "harness.kind": "comparison",
            "budget": spec.budget.label(),
            "baseline": spec.baseline,
            "git_commit": git_commit(),
            "harness_version": harness.__version__,
        },
    )
    run_id = run.info.run_id
    client.set_tag(run_id, "comparison_id", run_id)
    params = {
        "strategies": ",".join(spec.strategies),
        "seeds": ",".join(map(str, spec.seed_list())),
        "base_study": spec.base_study().get("name"),
        f"budget.{spec.budget.axis}": getattr(spec.budget, spec.budget.axis),
        "baseline": spec.baseline,
        "target": spec.target,
    }
    for key, value in params.items():
        client.log_param(run_id, key, str(value))
    client.log_text(run_id, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), "comparison.yaml")
    return experiment_id, run_id


def run_comparison(
    spec: ComparisonSpec,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | Path | None = None,
    progress: bool = True,
    announce: Callable[[Path], None] | None = None,
    report: Report | None = None,
) -> ComparisonOutcome:
    """Run every (strategy, seed) of a validated comparison, then `report` it; `announce(folder)`
    learns the comparison folder (what `harness resume` takes) as soon as it exists."""
    tracking_uri = tracking_uri or default_tracking_uri()
    init_ray(address)  # before any MLflow run: a bad address must leave nothing behind
    experiment_id, run_id = _start_comparison_run(spec, tracking_uri)
    try:
        root = Path(storage).resolve() if storage else harness_home() / "compare"
        folder = root / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{run_id[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        executions = [Execution(strategy, seed) for strategy in spec.strategies for seed in spec.seed_list()]
        state = ComparisonState(spec.model_dump(mode="json"), tracking_uri, experiment_id, run_id, executions)
        state.save(folder)
        client_for(tracking_uri).set_tag(run_id, "comparison_folder", str(folder))
    except BaseException as exc:
        status = KILLED if isinstance(exc, KeyboardInterrupt) else FAILED
        finish_study_run(StudyRun(tracking_uri, experiment_id, run_id), status)
        raise
    if announce is not None:
        announce(folder)
    return _continue(folder, state, address=address, progress=progress, report=report)


def resume_comparison(
    path: str | Path, *, address: str | None = None, progress: bool = True, report: Report | None = None
) -> ComparisonOutcome:
    """Continue a comparison: finished executions are kept, an interrupted one is resumed from
    its study folder, missing ones are run; then the report (once more, if already made)."""
    folder = Path(path).resolve()
    if not is_comparison_folder(folder):
        raise SpecError(
            f"{folder}: not a comparison folder (no {STATE_FILE}); give the folder `harness compare` printed"
        )
    state = ComparisonState.load(folder)
    if any(execution.status != FINISHED for execution in state.executions):
        init_ray(address)
    if not state.reported:
        reopen_study_run(StudyRun(state.tracking_uri, state.experiment_id, state.run_id))
    return _continue(folder, state, address=address, progress=progress, report=report)


def _continue(
    folder: Path, state: ComparisonState, *, address: str | None, progress: bool, report: Report | None
) -> ComparisonOutcome:
    spec = ComparisonSpec.model_validate(state.spec)
    base = spec.study_for(spec.strategies[0], spec.seed_list()[0])
    outcome = ComparisonOutcome(
        folder,
        spec,
        state.tracking_uri,
        state.experiment_id,
        state.run_id,
        base.search.metric,
        base.search.mode,
        optimum_of(base),
        state.executions,
        already_reported=state.reported,
    )
    comparison = StudyRun(state.tracking_uri, state.experiment_id, state.run_id)
    try:
        outcome.interrupted = _execute_all(folder, state, spec, outcome, address=address, progress=progress)
        if outcome.interrupted:
            finish_study_run(comparison, KILLED)
            return outcome
        files, metrics = report(outcome, folder / "report") if report is not None else ([], {})
    except BaseException as exc:
        if not state.reported:
            finish_study_run(comparison, KILLED if isinstance(exc, KeyboardInterrupt) else FAILED)
        raise
    if not state.reported:
        client = client_for(state.tracking_uri)
        for path in files:
            client.log_artifact(state.run_id, str(path))
        for key, value in metrics.items():
            client.log_metric(state.run_id, key, value)
        state.reported = True
        state.save(folder)
        finish_study_run(comparison)
    return outcome


def _execute_all(
    folder: Path,
    state: ComparisonState,
    spec: ComparisonSpec,
    outcome: ComparisonOutcome,
    *,
    address: str | None,
    progress: bool,
) -> bool:
    """Run what is not finished, in order; True when an execution was interrupted."""
    with _stop_between_studies() as stop:
        return _execute_each(folder, state, spec, outcome, stop, address=address, progress=progress)


class _StopRequest:
    """Ctrl-C outside a study's search: the first asks the comparison to stop before its next
    execution (during a search, Ray Tune's own handler stops it cleanly); a second stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("stopping before the next execution (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)


@contextmanager
def _stop_between_studies() -> Iterator[_StopRequest]:
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread; a caller elsewhere keeps its own
        return
    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _execute_each(
    folder: Path,
    state: ComparisonState,
    spec: ComparisonSpec,
    outcome: ComparisonOutcome,
    stop: _StopRequest,
    *,
    address: str | None,
    progress: bool,
) -> bool:
    total = len(state.executions)
    for index, execution in enumerate(state.executions, start=1):
        if execution.status == FINISHED:
            continue
        if stop.requested:
            return True
        print(f"[{index}/{total}] {spec.name}: {execution.strategy}, seed {execution.seed}", flush=True)

        def record(study_folder: Path, execution: Execution = execution) -> None:
            execution.folder, execution.status = str(study_folder), RUNNING
            saved = json.loads((study_folder / STUDY_STATE_FILE).read_text())
            execution.run_id = saved["study"]["parent_run_id"]
            state.save(folder)

        try:
            if execution.folder and _restorable(Path(execution.folder)):
                result = resume_study(execution.folder, address=address)
            else:
                _abandon(execution, state.tracking_uri)
                result = run_study(
                    spec.study_for(execution.strategy, execution.seed),
                    address=address,
                    tracking_uri=state.tracking_uri,
                    storage=folder / "studies",
                    progress=progress,
                    announce=record,
                    parent_run_id=state.run_id,
                    run_tags={"comparison_id": state.run_id, "strategy": execution.strategy},
                )
        except KeyboardInterrupt:
            if execution.folder:
                execution.status = INTERRUPTED
                state.save(folder)
            raise
        outcome.ran += 1
        execution.run_id = result.study.parent_run_id
        execution.status = INTERRUPTED if result.interrupted else FINISHED
        state.save(folder)
        if result.interrupted or stop.requested:
            return True
    return False


def _restorable(study_folder: Path) -> bool:
    from ray import tune

    return study_folder.is_dir() and tune.Tuner.can_restore(str(study_folder))


def _abandon(execution: Execution, tracking_uri: str) -> None:
    """An execution whose driver stopped before Ray saved any state starts again: its old run
    is closed KILLED, and only FINISHED study runs count in the report."""
    if execution.run_id is None:
        return
    client = client_for(tracking_uri)
    client.set_tag(execution.run_id, "stop_reason", "driver stopped before the study saved state; run again")
    if client.get_run(execution.run_id).info.status == "RUNNING":
        client.set_terminated(execution.run_id, status=KILLED)
    execution.folder = execution.run_id = None
