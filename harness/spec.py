"""The study spec: frozen, typed pydantic models loaded from YAML, with clear errors."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from harness.errors import SpecError
from harness.objectives import OBJECTIVE_METRIC, OBJECTIVES, objective_problems
from harness.space import DISCRETE, Distribution
from harness.strategies import SCHEDULERS, SEARCHERS, STRATEGIES, resolve_strategy, strategy_problems
from lightning_modules.config import Config
from lightning_modules.data import DATASETS, PREPROCESSORS, SPLITS, SplitConfig, split_configs
from lightning_modules.data.datasets import dataset_mapping
from lightning_modules.data.regimes import RegimeBinsConfig
from lightning_modules.models import MODELS, models_for
from lightning_modules.optim import OptimizerConfig, ScheduleConfig
from lightning_modules.regularizers import EarlyStoppingConfig, GradientClipConfig, RegularizationConfig

METRICS = ("val/loss", "val/acc", "train/loss", "train/acc", OBJECTIVE_METRIC)
# A trial's resources and the search's own settings are fixed for a whole study.
UNSEARCHABLE = ("name", "description", "search", "resources")
BUDGET_KEYS = ("budget_epochs", "time_budget_s")

ModelSpec = Annotated[
    Union[tuple(MODELS.get(name).config for name in MODELS.names())],  # type: ignore[valid-type]
    Field(discriminator="kind"),
]
ObjectiveSpec = Annotated[
    Union[tuple(OBJECTIVES.get(name).config for name in OBJECTIVES.names())],  # type: ignore[valid-type]
    Field(discriminator="name"),
]
DatasetSpec = Annotated[
    Union[tuple(DATASETS.get(name).config for name in DATASETS.names())],  # type: ignore[valid-type]
    Field(discriminator="name"),
]
SplitSpec = Annotated[Union[tuple(split_configs())], Field(discriminator="kind")]  # type: ignore[valid-type]
StepSpec = Annotated[
    Union[tuple(PREPROCESSORS.get(name).config for name in PREPROCESSORS.names())],  # type: ignore[valid-type]
    Field(discriminator="name"),
]
# Sections that are a union tagged by one key, each choosing a registry entry's config.
TAGGED_SECTIONS = {
    "model": (MODELS, "kind"),
    "objective": (OBJECTIVES, "name"),
    "dataset": (DATASETS, "name"),
    "split": (SPLITS, "kind"),
}
# Sections that are a list of such unions (`data.preprocessing.2.window` addresses an item's key).
TAGGED_LISTS = {"preprocessing": (PREPROCESSORS, "name")}


class FieldPathError(ValueError):
    """A check across sections that blames one field: `format_errors` reports it at `path`."""

    def __init__(self, path: str, given: Any, message: str) -> None:
        self.path, self.given = path, given
        super().__init__(message)


class DataSpec(Config):
    # Registry entries' configs, tagged by `name` (`kind` for the split); a bare name
    # (`dataset: digits`, `ucr:GunPoint`, `split: kfold`, a step `standardize`) means its defaults.
    dataset: SerializeAsAny[DatasetSpec] = Field(default_factory=lambda: DATASETS.get("digits").config())
    split: SerializeAsAny[SplitSpec] = Field(default_factory=SplitConfig)
    preprocessing: list[SerializeAsAny[StepSpec]] = Field(
        default_factory=lambda: [PREPROCESSORS.get("standardize").config()]
    )
    leak: bool = Field(False, description="teaching switch: fit preprocessing on train and val, not train alone")

    @field_validator("dataset", mode="before")
    @classmethod
    def _name_means_defaults(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        raw = dataset_mapping(value)
        DATASETS.check(raw["name"])
        return raw

    @field_validator("split", mode="before")
    @classmethod
    def _kind_means_defaults(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"kind": value}
        return {"kind": "stratified", **value} if isinstance(value, dict) else value  # the default kind

    @field_validator("preprocessing", mode="before")
    @classmethod
    def _names_mean_defaults(cls, steps: Any) -> Any:
        return [{"name": step} if isinstance(step, str) else step for step in steps] if isinstance(steps, list) else steps

    @model_validator(mode="after")
    def _fits_the_dataset(self) -> DataSpec:
        """Regime columns and step data kinds the dataset has (known without loading it)."""
        name = self.dataset.name  # type: ignore[attr-defined]
        entry = DATASETS.get(name)
        columns = ", ".join(entry.regimes) or "none"
        for path, column in [("data.split.column", getattr(self.split, "column", None))] + [
            (f"data.preprocessing.{i}.column", step.column)
            for i, step in enumerate(self.preprocessing)
            if isinstance(step, RegimeBinsConfig)
        ]:
            if column is not None and column not in entry.regimes:
                raise FieldPathError(
                    path, column, f"not a regime column of dataset {name!r}; its regime columns: {columns}"
                )
        for i, step in enumerate(self.preprocessing):
            if entry.kind not in step.kinds:
                raise FieldPathError(
                    f"data.preprocessing.{i}.name",
                    step.name,
                    f"a {step.name!r} step works on {' or '.join(step.kinds)} data; {name!r} is {entry.kind} data",
                )
        return self


class TrainSpec(Config):
    max_epochs: int = Field(10, ge=1)
    # `full`: the whole train split per step (batch gradient descent); 1: pure SGD.
    batch_size: int | Literal["full"] = 64
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    regularization: RegularizationConfig = RegularizationConfig()  # type: ignore[valid-type]
    gradient_clip: GradientClipConfig = GradientClipConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        # One clear message instead of one per member of the int | "full" union.
        if value == "full":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("Input should be an integer >= 1 or 'full' (the whole train split)")
        if value < 1:
            raise ValueError("Input should be greater than or equal to 1")
        return value

    @model_validator(mode="after")
    def _schedule_fits(self) -> TrainSpec:
        self.schedule.check_fits(self.max_epochs)
        return self


def train_problems(spec: StudySpec) -> list[str]:
    """What only the data can tell: a batch size larger than the train split (also among the
    searched values), label smoothing on a regression task. Loads the dataset once."""
    if spec.objective is not None:
        return []
    sizes = [("train.batch_size", spec.train.batch_size)]
    dist = spec.search.space.get("train.batch_size")
    if dist is not None:
        sizes += [("search.space.train.batch_size", value) for value in dist.probe_values()]
    from harness.trial import datamodule  # imports this module: import it only when called

    dataset = getattr(spec.data.dataset, "name", spec.data.dataset)
    try:
        dm = datamodule(spec)
    except ValueError as exc:  # a step that does not fit the data's shape, a split too small for it
        return [f"data: {exc} (dataset {dataset})"]
    problems = [
        f"{where}: {size} is larger than the train split of {dataset} ({dm.num_train} samples); "
        f"use at most {dm.num_train}, or `full` for the whole split"
        for where, size in sizes
        if isinstance(size, int) and size > dm.num_train
    ]
    if spec.train.regularization.label_smoothing > 0 and dm.task != "classification":
        problems.append(f"train.regularization.label_smoothing: applies to classification; {dataset} is {dm.task}")
    return problems


class SearchSpec(Config):
    strategy: str = "random"
    searcher: str | None = None
    scheduler: str | None = None
    num_trials: int = Field(10, ge=1)
    metric: Literal[METRICS] = "val/loss"  # type: ignore[valid-type]
    mode: Literal["min", "max"] = "min"
    space: dict[str, Distribution] = Field(default_factory=dict)
    max_concurrent_trials: int | None = Field(None, ge=1)
    grace_period: int = Field(1, ge=1, description="epochs before ASHA or median stopping may stop a trial")
    reduction_factor: float = Field(3.0, gt=1.0, description="ASHA / Hyperband / BOHB halving rate")
    perturbation_interval: int = Field(2, ge=1, description="epochs between PBT's exploit/explore steps")
    # Budgets end the whole study early (whichever comes first, with `num_trials`); trials still
    # running then are stopped. Unset budgets are left out of the dump, so hashes stay as they were.
    budget_epochs: int | None = Field(None, ge=1, description="stop once all trials together ran this many epochs")
    time_budget_s: float | None = Field(None, gt=0, description="stop after this many seconds of search")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        return STRATEGIES.check(name)

    @field_validator("searcher")
    @classmethod
    def _known_searcher(cls, name: str | None) -> str | None:
        return None if name is None else SEARCHERS.check(name)

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str | None) -> str | None:
        return None if name is None else SCHEDULERS.check(name)


class ResourcesSpec(Config):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_above_one(cls, gpus: float) -> float:
        # Ray packs fractions of one GPU; more than one GPU per trial must be whole GPUs.
        if gpus > 1 and gpus != int(gpus):
            raise ValueError(f"above 1, gpus_per_trial must be a whole number (given {gpus})")
        return gpus


class StudySpec(Config):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    seed: int = 0
    objective: ObjectiveSpec | None = Field(
        None, description="a benchmark function evaluated instead of training (data, model and train unused)"
    )
    data: DataSpec = DataSpec()
    model: SerializeAsAny[ModelSpec] = Field(default_factory=lambda: MODELS.get("mlp").config())
    train: TrainSpec = TrainSpec()
    search: SearchSpec = SearchSpec()
    resources: ResourcesSpec = ResourcesSpec()

    @model_validator(mode="after")
    def _model_reads_the_data(self) -> StudySpec:
        if self.objective is not None:
            return self
        data_kind = DATASETS.get(self.data.dataset.name).kind
        if data_kind not in MODELS.get(self.model.kind).accepts:
            raise FieldPathError(
                "model.kind",
                self.model.kind,
                f"a {self.model.kind!r} model cannot read {data_kind} data (data.dataset is "
                f"{self.data.dataset.name!r}); models for {data_kind} data: {', '.join(models_for(data_kind))}",
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        raw = self.model_dump(mode="json")
        if raw.get("objective") is None:
            # Absent rather than null: a training study's dump and hash stay as they were.
            raw.pop("objective", None)
        for key in BUDGET_KEYS:
            if raw["search"].get(key) is None:
                raw["search"].pop(key, None)
        return raw

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def spec_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_values(self, values: dict[str, Any]) -> StudySpec:
        """The spec with dotted-path values set (a trial's sampled configuration)."""
        raw = self.to_dict()
        for path, value in values.items():
            _set_path(raw, path, value)
        return StudySpec.model_validate(raw)


# --- loading and error reporting -------------------------------------------------------


def _child(node: Any, part: str) -> tuple[bool, Any]:
    """(found, value) of key `part` in a mapping, or of index `part` in a list."""
    if isinstance(node, dict):
        return part in node, node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return True, node[int(part)]
    return False, None


def _set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at a dotted path; a number addresses a list item (`data.preprocessing.0.window`)."""
    parts = path.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if part == "space" and i == 1 and parts[0] == "search":
            # Space keys are dotted paths themselves: the rest of the path is one key.
            node.setdefault("space", {})[".".join(parts[2:])] = value
            return
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            found, child = _child(node, part)
            if not found:
                raise SpecError(f"{where}: no such item; {'.'.join(parts[:i])} has {len(node)} (from 0)")
        else:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
        if isinstance(child, str) and isinstance(node, list) and parts[i - 1] in TAGGED_LISTS:
            child = node[int(part)] = {TAGGED_LISTS[parts[i - 1]][1]: child}  # a bare step name
        elif isinstance(child, str) and isinstance(node, dict) and part in TAGGED_SECTIONS:
            # A bare name (`split: kfold`, `dataset: ucr:GunPoint`) whose keys are being set.
            tag = TAGGED_SECTIONS[part][1]
            child = node[part] = dataset_mapping(child) if part == "dataset" else {tag: child}
        if not isinstance(child, (dict, list)):
            raise SpecError(f"{where}: is a {type(child).__name__}, not a mapping; cannot set {path}")
        node = child
    if isinstance(node, list):
        if not _child(node, parts[-1])[0]:
            raise SpecError(f"{path}: no such item; {'.'.join(parts[:-1])} has {len(node)} (from 0)")
        node[int(parts[-1])] = value
        return
    node[parts[-1]] = value
    if len(parts) > 1 and parts[-2] in TAGGED_SECTIONS and parts[-1] == TAGGED_SECTIONS[parts[-2]][1]:
        _keep_fields_of(node, TAGGED_SECTIONS[parts[-2]][0], value)
    if len(parts) > 2 and parts[-3] in TAGGED_LISTS and parts[-1] == TAGGED_LISTS[parts[-3]][1]:
        _keep_fields_of(node, TAGGED_LISTS[parts[-3]][0], value)


def _keep_fields_of(node: dict[str, Any], registry: Any, name: Any) -> None:
    """After a tag changes (`model.kind: lstm` -> `transformer`), drop the keys the new entry's
    config lacks, so that searching `model.kind` keeps the shared settings and defaults the rest."""
    if isinstance(name, str) and name in registry:
        fields = registry.get(name).config.model_fields
        for key in [key for key in node if key not in fields]:
            del node[key]


def _config_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class a validation-error location points into (for listing allowed keys)."""
    cls: Any = StudySpec
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        if part in TAGGED_SECTIONS:
            registry, _ = TAGGED_SECTIONS[part]
            if parts and parts[0] in registry:
                cls = registry.get(parts.pop(0)).config
                continue
            return None
        if part in TAGGED_LISTS:
            registry, _ = TAGGED_LISTS[part]
            if len(parts) > 1 and isinstance(parts[0], int) and parts[1] in registry:
                cls = registry.get(parts[1]).config
                del parts[:2]
                continue
            return None
        annotation = cls.model_fields[part].annotation
        cls = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return cls


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tags pydantic puts in locations (`model.mlp.hidden` -> `model.hidden`)."""
    out = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] in TAGGED_SECTIONS and part in TAGGED_SECTIONS[loc[i - 1]][0]:
            continue
        if i > 1 and loc[i - 2] in TAGGED_LISTS and isinstance(loc[i - 1], int) and part in TAGGED_LISTS[loc[i - 2]][0]:
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def format_errors(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        loc = _strip_tags(err["loc"])
        path = prefix + ".".join(str(p) for p in loc) if loc else (prefix.rstrip(".") or "spec")
        given = err.get("input")
        blamed = err.get("ctx", {}).get("error")
        if isinstance(blamed, FieldPathError):
            lines.append(f"{prefix}{blamed.path}: {blamed} (given {_short(blamed.given)})")
        elif err["type"] == "extra_forbidden":
            cls = _config_at(err["loc"][:-1])
            allowed = ", ".join(sorted(cls.model_fields)) if cls else "see the docs"
            lines.append(f"{path}: unknown key (given {given!r}); allowed keys: {allowed}")
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found") and loc and _tagged_at(loc):
            registry, tag = _tagged_at(loc)  # type: ignore[misc]
            given_tag = err.get("ctx", {}).get("tag")
            problem = f"unknown {registry.kind} {given_tag!r}" if err["type"] == "union_tag_invalid" else "missing"
            lines.append(f"{path}.{tag}: {problem}; known: {', '.join(registry.names())}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg} (given {_short(given)})")
    return "\n".join(lines)


def _tagged_at(loc: tuple[Any, ...]) -> tuple[Any, str] | None:
    """(registry, tag key) when `loc` points at a tagged section or an item of a tagged list."""
    if loc[-1] in TAGGED_SECTIONS:
        return TAGGED_SECTIONS[loc[-1]]
    if len(loc) > 1 and isinstance(loc[-1], int) and loc[-2] in TAGGED_LISTS:
        return TAGGED_LISTS[loc[-2]]
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _lookup(raw: dict[str, Any], path: str) -> bool:
    node: Any = raw
    for part in path.split("."):
        found, node = _child(node, part)
        if not found:
            return False
    return True


def check_search_space(spec: StudySpec) -> None:
    """Every search path names a field, and every value it can take is valid there."""
    raw = spec.to_dict()
    raw["search"]["space"] = {}
    problems = []
    searcher, _ = resolve_strategy(spec)
    for path, dist in spec.search.space.items():
        where = f"search.space.{path}"
        if path.split(".")[0] in UNSEARCHABLE:
            problems.append(f"{where}: cannot be searched; searchable sections: data, model, train, seed, objective")
            continue
        if not _lookup(raw, path):
            problems.append(f"{where}: names no field of the study; {_siblings(raw, path)}")
            continue
        if SEARCHERS.get(searcher).grid and not isinstance(dist, DISCRETE):
            problems.append(
                f"{where}: the grid searcher needs a finite set of values (choice or grid), "
                f"given {next(iter(type(dist).model_fields))}"
            )
        for value in dist.probe_values():
            probe = copy.deepcopy(raw)
            _set_path(probe, path, value)
            try:
                StudySpec.model_validate(probe)
            except ValidationError as exc:
                problems.append(f"{where}: value {value!r} is not allowed: {format_errors(exc)}")
                break
    problems.extend(objective_problems(spec))
    problems.extend(train_problems(spec))
    problems.extend(strategy_problems(spec))
    if problems:
        raise SpecError("\n".join(problems))


def _siblings(raw: dict[str, Any], path: str) -> str:
    parts = path.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        found, child = _child(node, part)
        if not found:
            parent = ".".join(parts[:depth]) or "the study"
            if isinstance(node, list):
                return f"{parent} has {len(node)} items, numbered from 0"
            keys = ", ".join(sorted(node)) if isinstance(node, dict) else "none (not a mapping)"
            return f"fields under {parent}: {keys}"
        node = child
    return ""


def parse_override(text: str) -> tuple[str, Any]:
    """`key.path=value` with the value read as YAML (`5` is an int, `[64, 32]` a list)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {text!r}: expected key.path=value")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise SpecError(f"--set {key}: value {value!r} is not valid YAML: {exc}") from None


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> StudySpec:
    """Read, override and validate a study file; raise SpecError on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the study file ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a study file is a mapping of keys (name, data, model, ...), given {type(raw).__name__}")
    return spec_from_dict(raw, overrides, source=str(path))


def spec_from_dict(raw: dict[str, Any], overrides: dict[str, Any] | None = None, source: str = "spec") -> StudySpec:
    raw = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        _set_path(raw, key, value)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid study\n{format_errors(exc)}") from None
    check_search_space(spec)
    return spec
