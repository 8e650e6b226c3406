"""The study spec: frozen, typed pydantic models loaded from YAML, with clear errors."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, SerializeAsAny, field_validator, model_validator

from harness.errors import FieldPathError
from harness.objectives import OBJECTIVE_METRIC, OBJECTIVES
from harness.search import SCHEDULERS, SEARCHERS, STRATEGIES
from harness.search.space import Distribution
from harness.study.dotted import set_path
from lightning_modules.compression import COMPRESSION_STEPS, DistillConfig, PruneConfig, QuantizeConfig
from lightning_modules.config import Config
from lightning_modules.data import DATASETS, PREPROCESSORS, SplitConfig, split_configs
from lightning_modules.data.datasets import dataset_mapping
from lightning_modules.data.regimes import RegimeBinsConfig
from lightning_modules.models import MODELS, models_for
from lightning_modules.optim import OptimizerConfig, ScheduleConfig
from lightning_modules.regularizers import REGULARIZERS, EarlyStoppingConfig, GradientClipConfig, RegularizationConfig

# What a compression trial measures of its shipped artifact (lower is better except the
# ratios and speedups), searchable as any metric.
COMPRESSION_METRICS = (
    "size/bytes", "size/gzip_bytes", "size/ratio", "latency/ms", "latency/ms_batch", "latency/speedup",
    "latency/speedup_batch", "sparsity", "params/nonzero",
)
# A bias-variance study's decomposition at known points (see BiasVarianceSpec).
BIAS_VARIANCE_METRICS = ("bv/expected_error", "bv/bias2", "bv/variance")
METRICS = (
    "val/loss", "val/acc", "val/ece", "train/loss", "train/acc", OBJECTIVE_METRIC, *COMPRESSION_METRICS,
    *BIAS_VARIANCE_METRICS,
)
# A trial's resources and the search's own settings are fixed for a whole study.
UNSEARCHABLE = ("name", "description", "search", "resources")
BUDGET_KEYS = ("budget_epochs", "time_budget_s")
# Fields that came after specs were hashed: left out of the dump at their default (None, False
# or 0), so that every earlier spec keeps its hash.
FIELDS_ADDED_LATER = (("train", "checkpoint_every"), ("train", "lr_find"), ("objective", "cost_s"))
MULTI_OBJECTIVE_KEYS = ("objectives", "constraints", "reference")

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
CompressionStepSpec = Annotated[
    Union[tuple(COMPRESSION_STEPS.get(name).config for name in COMPRESSION_STEPS.names())],  # type: ignore[valid-type]
    Field(discriminator="kind"),
]
# Models whose export (ONNX) and weight layers the compression steps handle.
COMPRESSIBLE_MODELS = ("mlp", "cnn")


class TeacherRun(Config):
    run: str = Field(pattern=r"^[0-9a-f]{32}$", description="a finished study (parent) or trial run with a logged model")


class CompressSpec(Config):
    """The model to compress (`train`: the study's own model and train sections, trained once
    per execution; or `{run: RUN_ID}`) and the steps applied to it, in order."""

    teacher: Literal["train"] | TeacherRun = "train"
    steps: list[SerializeAsAny[CompressionStepSpec]] = Field(min_length=1, max_length=20)

    @field_validator("steps", mode="before")
    @classmethod
    def _known_kinds(cls, steps: Any) -> Any:
        for i, step in enumerate(steps if isinstance(steps, list) else []):
            kind = step.get("kind") if isinstance(step, dict) else None
            if kind not in COMPRESSION_STEPS:
                raise FieldPathError(
                    f"compress.steps.{i}.kind", kind, f"a compression step; known: {', '.join(COMPRESSION_STEPS.names())}"
                )
        return steps

    @model_validator(mode="after")
    def _quantize_last(self) -> CompressSpec:
        # Quantization fixes the weights' integer grid; a later step that trains would leave it.
        for i, step in enumerate(self.steps):
            later = [j for j in range(i + 1, len(self.steps)) if COMPRESSION_STEPS.get(self.steps[j].kind).trains]
            if isinstance(step, QuantizeConfig) and later:
                raise FieldPathError(
                    f"compress.steps.{i}.kind", step.kind,
                    f"quantization comes after every step that trains (step {later[0]} is "
                    f"{self.steps[later[0]].kind!r}); move it last",
                )
        return self

    def epochs(self) -> int:
        """Epochs a trial reports: every fine-tuning epoch, then one for the measured artifact."""
        total = 1
        for step in self.steps:
            if isinstance(step, QuantizeConfig) and step.method == "qat":
                total += step.epochs
            elif isinstance(step, PruneConfig):
                total += step.rounds * step.finetune_epochs
            elif isinstance(step, DistillConfig):
                total += step.epochs
        return total


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


# Upper bounds that no real study reaches and that keep a typo from starting a search that never ends.
MAX_EPOCHS, MAX_TRIALS = 100_000, 100_000


class TrainSpec(Config):
    max_epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    # `full`: the whole train split per step (batch gradient descent); 1: pure SGD.
    batch_size: int | Literal["full"] = 64
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    regularization: RegularizationConfig = RegularizationConfig()  # type: ignore[valid-type]
    gradient_clip: GradientClipConfig = GradientClipConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    snapshot_ensemble: int = Field(
        0, ge=0, le=100, description="ensemble the weights of the last N SGDR cycle ends (0: off)"
    )
    lr_find: bool = Field(
        False,
        description="run the LR range test (as `harness lr-find`) on the trial's model and data first and "
        "train at the LR it suggests (reported as lr_find/suggested_lr); replaces train.optimizer.lr",
    )
    # None is `auto`; left out of the dump when unset, so hashes stay as they were.
    checkpoint_every: int | None = Field(
        None, ge=1, le=MAX_EPOCHS,
        description="epochs between a trial's checkpoints, or auto (when the time since the last one is "
        "20x what writing it took, at least 10 s); the last epoch and those the scheduler acts on always get one",
    )

    @field_validator("checkpoint_every", mode="before")
    @classmethod
    def _checkpoint_every(cls, value: Any) -> Any:
        if value == "auto":
            return None
        if isinstance(value, bool) or not isinstance(value, int) and value is not None:
            raise ValueError("Input should be an integer >= 1 (epochs between checkpoints) or 'auto'")
        return value

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
        if self.snapshot_ensemble and self.schedule.name != "sgdr":
            raise FieldPathError(
                "train.snapshot_ensemble", self.snapshot_ensemble,
                f"snapshots are taken at warm restarts: set train.schedule.name to sgdr (given {self.schedule.name!r})",
            )
        return self


class ObjectiveMetric(Config):
    metric: Literal[METRICS]  # type: ignore[valid-type]
    mode: Literal["min", "max"]


class Constraint(Config):
    """`metric >= value` or `metric <= value`: a trial outside it is infeasible (recorded,
    never on the Pareto front)."""

    metric: Literal[METRICS]  # type: ignore[valid-type]
    op: Literal[">=", "<="]
    value: float

    def holds(self, value: float) -> bool:
        return value >= self.value if self.op == ">=" else value <= self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class SearchSpec(Config):
    strategy: str = "random"
    searcher: str | None = None
    scheduler: str | None = None
    num_trials: int = Field(10, ge=1, le=MAX_TRIALS)
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
    # Several objectives make the study multi-objective: its result is the Pareto front.
    objectives: list[ObjectiveMetric] | None = Field(None, min_length=2, max_length=5)
    constraints: list[Constraint] | None = Field(None, description="e.g. 'val/acc >= 0.95': infeasible trials leave the front")
    reference: dict[str, float] | None = Field(None, description="hypervolume reference point by metric (default: the worst values seen)")

    @model_validator(mode="before")
    @classmethod
    def _first_objective_is_the_metric(cls, data: Any) -> Any:
        # Progress, the best-trials table and Tune's own bookkeeping follow the first objective.
        if isinstance(data, dict) and isinstance(data.get("objectives"), list) and data["objectives"]:
            first = data["objectives"][0]
            if isinstance(first, dict):
                data = {**data, "metric": data.get("metric", first.get("metric")), "mode": data.get("mode", first.get("mode"))}
        return data

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        parsed = []
        for item in value:
            if isinstance(item, str):
                for op in (">=", "<="):
                    if op in item:
                        metric, _, number = item.partition(op)
                        try:
                            item = {"metric": metric.strip(), "op": op, "value": float(number)}
                        except ValueError:
                            raise ValueError(f"{item!r}: expected 'METRIC >= NUMBER' or 'METRIC <= NUMBER'") from None
                        break
                else:
                    raise ValueError(f"{item!r}: expected 'METRIC >= NUMBER' or 'METRIC <= NUMBER'")
            parsed.append(item)
        return parsed

    @model_validator(mode="after")
    def _objectives_consistent(self) -> SearchSpec:
        if self.objectives is None:
            for field in ("constraints", "reference"):
                if getattr(self, field) is not None:
                    raise FieldPathError(f"search.{field}", getattr(self, field), "set with search.objectives (a multi-objective study)")
            return self
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) < len(metrics):
            raise FieldPathError("search.objectives", metrics, "each metric once")
        first = self.objectives[0]
        if (self.metric, self.mode) != (first.metric, first.mode):
            raise FieldPathError(
                "search.metric", self.metric, f"with objectives, metric and mode are the first objective's ({first.metric}, {first.mode}); leave them out"
            )
        for key in self.reference or {}:
            if key not in metrics:
                raise FieldPathError(f"search.reference.{key}", key, f"one of the objectives: {', '.join(metrics)}")
        return self

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


class BiasVarianceSpec(Config):
    """Train each configuration on `training_sets` independently drawn training sets and
    decompose its expected error into bias^2, variance and noise at `points` evenly spaced
    inputs (a dataset with a known true function: `poly`)."""

    training_sets: int = Field(20, ge=2, le=1000)
    points: int = Field(101, ge=2, le=100_000)


class SpecialistsSpec(Config):
    """Beside the global model, train one specialist per regime bin of `column` on that regime's
    training samples alone, and score each on its own regime."""

    column: str = Field(description="a regime column of the dataset; its bins are the regime_bins step's (3 quantiles by default)")


class StudySpec(Config):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    seed: int = Field(0, ge=0, lt=2**32, description="seeds every trial and the searcher (NumPy takes [0, 2**32))")
    objective: ObjectiveSpec | None = Field(
        None, description="a benchmark function evaluated instead of training (data, model and train unused)"
    )
    data: DataSpec = DataSpec()
    model: SerializeAsAny[ModelSpec] = Field(default_factory=lambda: MODELS.get("mlp").config())
    train: TrainSpec = TrainSpec()
    search: SearchSpec = SearchSpec()
    resources: ResourcesSpec = ResourcesSpec()
    compress: CompressSpec | None = Field(None, description="compress a teacher model by a chain of steps")
    bias_variance: BiasVarianceSpec | None = Field(
        None, description="each trial trains on many drawn training sets and reports bias^2, variance and noise"
    )

    specialists: SpecialistsSpec | None = Field(
        None, description="also train one model per regime bin and score it on its regime against the global model"
    )

    @model_validator(mode="after")
    def _specialists_fit(self) -> StudySpec:
        if self.specialists is None:
            return self
        if self.objective is not None or self.compress is not None or self.bias_variance is not None:
            raise FieldPathError("specialists", "...", "a training study of its own (no objective, compress or bias_variance section)")
        if self.data.split.kind == "kfold":
            raise FieldPathError("data.split.kind", "kfold", "a holdout split (specialists is set)")
        entry = DATASETS.get(self.data.dataset.name)
        if self.specialists.column not in entry.regimes:
            raise FieldPathError(
                "specialists.column", self.specialists.column,
                f"a regime column of dataset {self.data.dataset.name!r}: {', '.join(entry.regimes) or 'it has none'}",
            )
        return self

    @model_validator(mode="after")
    def _bias_variance_fits(self) -> StudySpec:
        if self.bias_variance is None:
            return self
        if self.objective is not None or self.compress is not None:
            raise FieldPathError("bias_variance", "...", "a training study of its own (no objective or compress section)")
        if self.data.dataset.name != "poly":
            raise FieldPathError(
                "data.dataset", self.data.dataset.name, "a dataset whose true function is known: poly (bias_variance is set)"
            )
        if self.data.split.kind == "kfold":
            raise FieldPathError("data.split.kind", "kfold", "a holdout split: each training set is its own draw (bias_variance is set)")
        return self

    @model_validator(mode="after")
    def _snapshots_on_a_single_fit(self) -> StudySpec:
        several = self.data.split.kind == "kfold" or self.bias_variance or self.compress or self.specialists
        if self.train.snapshot_ensemble and several:
            raise FieldPathError(
                "train.snapshot_ensemble", self.train.snapshot_ensemble,
                "0 here: snapshot ensembles are kept by single training fits, not k-fold, bias-variance, specialists or compression trials",
            )
        return self

    @model_validator(mode="after")
    def _compression_fits(self) -> StudySpec:
        """Each step suits the network it receives: the teacher's (known for `teacher: train`)
        or the last distillation's student."""
        if self.compress is None:
            return self
        if self.objective is not None:
            raise FieldPathError("compress", "...", "an objective study trains no model to compress; remove one section")
        trained = self.compress.teacher == "train"
        data_kind = DATASETS.get(self.data.dataset.name).kind
        model = self.model if trained else None  # the network each step receives, where known
        for i, step in enumerate(self.compress.steps):
            where = f"compress.steps.{i}"
            if isinstance(step, DistillConfig):
                if step.student is not None and data_kind not in MODELS.get(step.student.kind).accepts:
                    raise FieldPathError(
                        f"{where}.student.kind", step.student.kind,
                        f"a model that reads {data_kind} data: {', '.join(models_for(data_kind))}",
                    )
                hidden = getattr(self.model, "hidden", None) if trained else None
                if step.hint_weight > 0 and hidden is not None and not -len(hidden) <= step.hint_layer < len(hidden):
                    raise FieldPathError(
                        f"{where}.hint_layer", step.hint_layer,
                        f"an index into the teacher's {len(hidden)} hidden layers (-{len(hidden)} to {len(hidden) - 1})",
                    )
                model = step.student or model
                continue
            kind = getattr(model, "kind", None)
            if kind is not None and kind not in COMPRESSIBLE_MODELS:
                source = "model.kind" if model is self.model else f"the student of an earlier step ({kind!r})"
                raise FieldPathError(
                    f"{where}.kind", step.kind,
                    f"{step.kind} handles {', '.join(COMPRESSIBLE_MODELS)} networks; it would receive {source} {kind!r} "
                    "(distill into an mlp or cnn first)",
                )
            if isinstance(step, PruneConfig) and step.structure == "structured" and kind not in (None, "mlp"):
                raise FieldPathError(
                    f"{where}.structure", step.structure,
                    f"structured pruning removes hidden neurons of an mlp; a {kind!r} model has none it "
                    "can shrink (use structure: unstructured)",
                )
            if isinstance(step, PruneConfig) and step.ticket == "rewind" and (not trained or model is not self.model):
                raise FieldPathError(
                    f"{where}.ticket", step.ticket,
                    "rewinding needs the initial weights of the network it prunes, known only for the teacher of "
                    "teacher: train before any distillation",
                )
        return self

    @model_validator(mode="after")
    def _metrics_are_reported(self) -> StudySpec:
        """Every metric the search reads is one its trials report (compression metrics come
        from compression trials only)."""
        search = self.search
        used = [("search.metric", search.metric)]
        used += [(f"search.objectives.{i}.metric", o.metric) for i, o in enumerate(search.objectives or [])]
        used += [(f"search.constraints.{i}.metric", k.metric) for i, k in enumerate(search.constraints or [])]
        for path, metric in used:
            if metric in COMPRESSION_METRICS and self.compress is None:
                raise FieldPathError(path, metric, "a metric this study's trials report: compression metrics need a compress section")
            if metric in BIAS_VARIANCE_METRICS and self.bias_variance is None:
                raise FieldPathError(path, metric, "a metric this study's trials report: bv/ metrics need a bias_variance section")
        return self

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

    @model_validator(mode="after")
    def _augmentations_fit_the_data(self) -> StudySpec:
        if self.objective is not None:
            return self
        data_kind = DATASETS.get(self.data.dataset.name).kind
        for name in REGULARIZERS.names():
            kinds = REGULARIZERS.get(name).kinds
            value = getattr(self.train.regularization, name)
            if kinds and value and data_kind not in kinds:
                raise FieldPathError(
                    f"train.regularization.{name}", value,
                    f"{name} transforms {' or '.join(kinds)} data; {self.data.dataset.name!r} is {data_kind} data",
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        raw = self.model_dump(mode="json")
        for section in ("objective", "compress", "bias_variance", "specialists"):
            if raw.get(section) is None:
                # Absent rather than null: a training study's dump and hash stay as they were.
                raw.pop(section, None)
        for key in (*BUDGET_KEYS, *MULTI_OBJECTIVE_KEYS):
            if raw["search"].get(key) is None:
                raw["search"].pop(key, None)
        for section, key in FIELDS_ADDED_LATER:
            if raw.get(section) is not None and not raw[section].get(key):
                raw[section].pop(key, None)  # at its default: absent, as before the field existed
        return raw

    def to_yaml(self) -> str:
        # libyaml's emitter where installed: a trial's resolved spec is written for every trial,
        # and the pure-Python one takes several milliseconds each.
        return yaml.dump(self.to_dict(), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)

    def spec_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_values(self, values: dict[str, Any]) -> StudySpec:
        """The spec with dotted-path values set (a trial's sampled configuration)."""
        raw = self.to_dict()
        for path, value in values.items():
            set_path(raw, path, value)
        return StudySpec.model_validate(raw)


