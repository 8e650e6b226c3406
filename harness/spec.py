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
from lightning_modules.data import DATASETS, PREPROCESSORS, SplitConfig
from lightning_modules.models import MODELS, models_for
from lightning_modules.optim import OptimizerConfig, ScheduleConfig
from lightning_modules.regularizers import EarlyStoppingConfig, GradientClipConfig, RegularizationConfig

METRICS = ("val/loss", "val/acc", "train/loss", "train/acc", OBJECTIVE_METRIC)
# A trial's resources and the search's own settings are fixed for a whole study.
UNSEARCHABLE = ("name", "description", "search", "resources")

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
# Sections that are a union tagged by one key, each choosing a registry entry's config.
TAGGED_SECTIONS = {"model": (MODELS, "kind"), "objective": (OBJECTIVES, "name"), "dataset": (DATASETS, "name")}


class FieldPathError(ValueError):
    """A check across sections that blames one field: `format_errors` reports it at `path`."""

    def __init__(self, path: str, given: Any, message: str) -> None:
        self.path, self.given = path, given
        super().__init__(message)


class DataSpec(Config):
    # A registry entry's config, tagged by `name`; a bare name (`dataset: digits`) means its defaults.
    dataset: SerializeAsAny[DatasetSpec] = Field(default_factory=lambda: DATASETS.get("digits").config())
    split: SplitConfig = SplitConfig()
    preprocessing: list[str] = Field(default_factory=lambda: ["standardize"])

    @field_validator("dataset", mode="before")
    @classmethod
    def _name_means_defaults(cls, value: Any) -> Any:
        return {"name": DATASETS.check(value)} if isinstance(value, str) else value

    @field_validator("preprocessing")
    @classmethod
    def _known_steps(cls, steps: list[str]) -> list[str]:
        return [PREPROCESSORS.check(step) for step in steps]


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
    def _schedule_fits(self) -> "TrainSpec":
        self.schedule.check_fits(self.max_epochs)
        return self


def train_problems(spec: "StudySpec") -> list[str]:
    """What only the data can tell: a batch size larger than the train split (also among the
    searched values), label smoothing on a regression task. Loads the dataset once."""
    if spec.objective is not None:
        return []
    sizes = [("train.batch_size", spec.train.batch_size)]
    dist = spec.search.space.get("train.batch_size")
    if dist is not None:
        sizes += [("search.space.train.batch_size", value) for value in dist.probe_values()]
    from harness.trial import datamodule  # imports this module: import it only when called

    dm = datamodule(spec)
    dataset = getattr(spec.data.dataset, "name", spec.data.dataset)
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
    def _model_reads_the_data(self) -> "StudySpec":
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
        return raw

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def spec_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_values(self, values: dict[str, Any]) -> "StudySpec":
        """The spec with dotted-path values set (a trial's sampled configuration)."""
        raw = self.to_dict()
        for path, value in values.items():
            _set_path(raw, path, value)
        return StudySpec.model_validate(raw)


# --- loading and error reporting -------------------------------------------------------


def _set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        if part == "space" and i == 1 and parts[0] == "search":
            # Space keys are dotted paths themselves: the rest of the path is one key.
            node.setdefault("space", {})[".".join(parts[2:])] = value
            return
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecError(f"{'.'.join(parts[: i + 1])}: is a {type(child).__name__}, not a mapping; cannot set {path}")
        node = child
    node[parts[-1]] = value
    if len(parts) > 1 and parts[-2] in TAGGED_SECTIONS and parts[-1] == TAGGED_SECTIONS[parts[-2]][1]:
        _keep_fields_of(node, TAGGED_SECTIONS[parts[-2]][0], value)


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
        annotation = cls.model_fields[part].annotation
        cls = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return cls


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tags pydantic puts in locations (`model.mlp.hidden` -> `model.hidden`)."""
    out = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] in TAGGED_SECTIONS and part in TAGGED_SECTIONS[loc[i - 1]][0]:
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
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found") and loc and loc[-1] in TAGGED_SECTIONS:
            registry, tag = TAGGED_SECTIONS[loc[-1]]
            given_tag = err.get("ctx", {}).get("tag")
            problem = f"unknown {registry.kind} {given_tag!r}" if err["type"] == "union_tag_invalid" else "missing"
            lines.append(f"{path}.{tag}: {problem}; known: {', '.join(registry.names())}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg} (given {_short(given)})")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _lookup(raw: dict[str, Any], path: str) -> bool:
    node: Any = raw
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
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
        if not isinstance(node, dict) or part not in node:
            parent = ".".join(parts[:depth]) or "the study"
            keys = ", ".join(sorted(node)) if isinstance(node, dict) else "none (not a mapping)"
            return f"fields under {parent}: {keys}"
        node = node[part]
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
