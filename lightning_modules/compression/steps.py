"""The compression steps a study chains, one registry entry each: a typed, frozen config (its
fields searchable like any other) and how the step changes the student network."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import Field, SerializeAsAny, model_validator
from torch import nn

from lightning_modules.compression import prune as pruning
from lightning_modules.compression.quantize import Scheme, add_fake_quant, remove_fake_quant
from lightning_modules.config import Config
from lightning_modules.models import MODELS
from lightning_modules.registry import Registry

# finetune(net, epochs, stage, lr, distill=None): train `net` in place for `epochs`, reporting
# under `stage`; with `distill` (a DistillConfig), by distillation from the context's teacher.
Finetune = Callable[..., None]


@dataclass
class Context:
    """What steps need from outside: fine-tuning, the teacher's initial weights (for
    lottery-ticket rewinding), a freshly initialized network of the same architecture (its
    random-reinitialization control), and a builder of any registry model for the data
    (a distillation student)."""

    finetune: Finetune
    initial: nn.Module | None = None
    random_initial: Callable[[], nn.Module] | None = None
    build: Callable[[Any], nn.Module] | None = None
    teacher: nn.Module | None = None


@dataclass
class Student:
    """The network being compressed and what its export must do (the quantization scheme)."""

    net: nn.Module
    quantize: QuantizeConfig | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepEntry:
    config: type[Config]
    apply: Callable[[Any, Student, Context], None]
    trains: bool  # whether the step changes weights by training (a quantize step must come after all such)
    summary: str = ""


COMPRESSION_STEPS: Registry[StepEntry] = Registry("compression step", tag="kind")


class QuantizeConfig(Config):
    """Quantize the weights to `bits`-wide integers (and, at 8 bits, optionally the
    activations): after training (`ptq`) or after `epochs` of fine-tuning with fake-quantized
    weights (`qat`, the straight-through estimator)."""

    kind: Literal["quantize"] = "quantize"
    method: Literal["ptq", "qat"] = "ptq"
    bits: Literal[2, 4, 8] = 8
    granularity: Literal["per_tensor", "per_channel"] = "per_channel"
    symmetric: bool = True
    activations: bool = Field(False, description="also quantize activations (8 bits: ONNX Runtime static QDQ)")
    calibration: int = Field(512, ge=1, le=1_000_000, description="train samples that calibrate activation ranges")
    epochs: int = Field(2, ge=0, le=10_000, description="quantization-aware fine-tuning epochs (qat; ptq trains nothing)")
    lr: float | None = Field(None, gt=0, description="fine-tuning learning rate (default: train.optimizer.lr)")

    @model_validator(mode="after")
    def _consistent(self) -> QuantizeConfig:
        if self.method == "qat" and self.epochs == 0:
            raise ValueError("quantization-aware training (method: qat) needs epochs >= 1")
        if self.activations and self.bits != 8:
            raise ValueError(
                f"activations are quantized at 8 bits only (ONNX Runtime's integer kernels); with bits {self.bits} "
                "set activations: false (weights only)"
            )
        return self

    @property
    def scheme(self) -> Scheme:
        return Scheme(self.bits, self.granularity == "per_channel", self.symmetric)


StudentModel = Annotated[
    Union[tuple(MODELS.get(name).config for name in MODELS.names())],  # type: ignore[valid-type]
    Field(discriminator="kind"),
]


class DistillConfig(Config):
    """Train a student (any registry model; unset: the teacher's own architecture, freshly
    initialized: self-distillation) for `epochs` on alpha * T^2 * KL(teacher_T || student_T) +
    (1 - alpha) * CE(labels); with `hint_weight > 0` its last hidden layer also matches the
    teacher's `hint_layer`-th hidden layer through a learned projection."""

    kind: Literal["distill"] = "distill"
    student: SerializeAsAny[StudentModel] | None = None
    temperature: float = Field(4.0, gt=0.0, le=1000.0)
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="weight of the teacher's soft targets (1 - alpha: labels)")
    t_squared: bool = Field(True, description="scale the soft term by T^2 (Hinton et al.), so alpha means the same at any T")
    epochs: int = Field(10, ge=1, le=10_000)
    hint_weight: float = Field(0.0, ge=0.0, description="feature-based distillation: weight of the hint loss")
    hint_layer: int = Field(-1, description="which of the teacher's hidden layers the hint matches (-1: the last)")
    lr: float | None = Field(None, gt=0, description="learning rate (default: train.optimizer.lr)")


def _reinitialized(net: nn.Module) -> nn.Module:
    fresh = copy.deepcopy(net)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return fresh


def _distill(cfg: DistillConfig, student: Student, ctx: Context) -> None:
    if ctx.teacher is None:
        raise ValueError("distillation needs the teacher")
    if cfg.student is None:
        net = _reinitialized(ctx.teacher)
    elif ctx.build is None:
        raise ValueError("a distillation student of another architecture needs a model builder")
    else:
        net = ctx.build(cfg.student)
    ctx.finetune(net, cfg.epochs, "distill", cfg.lr, distill=cfg)
    student.net = net


def _quantize(cfg: QuantizeConfig, student: Student, ctx: Context) -> None:
    if cfg.method == "qat":
        add_fake_quant(student.net, cfg.scheme)
        ctx.finetune(student.net, cfg.epochs, "quantize", cfg.lr)
        remove_fake_quant(student.net)
    student.quantize = cfg


class PruneConfig(Config):
    """Prune `amount` of the weights: unstructured (single weights by magnitude, per layer or
    ranked globally) or structured (whole hidden neurons, shrinking an MLP); in `rounds`, each
    followed by `finetune_epochs` of fine-tuning. `ticket: rewind` is the lottery ticket
    (after each round the surviving weights go back to their initial values and retrain);
    `ticket: random` is its control (same masks, random initial values)."""

    kind: Literal["prune"] = "prune"
    structure: Literal["unstructured", "structured"] = "unstructured"
    scope: Literal["layer", "global"] | None = Field(
        None, description="rank weights per layer or across layers (default: global; structured: per layer)"
    )
    amount: float = Field(0.5, ge=0.0, lt=1.0)
    rounds: int = Field(1, ge=1, le=100)
    finetune_epochs: int = Field(0, ge=0, le=10_000)
    ticket: Literal["none", "rewind", "random"] = "none"
    lr: float | None = Field(None, gt=0, description="fine-tuning learning rate (default: train.optimizer.lr)")

    @model_validator(mode="after")
    def _consistent(self) -> PruneConfig:
        if self.structure == "structured" and self.scope == "global":
            raise ValueError("structured pruning removes a fraction of each hidden layer's neurons: scope: layer")
        if self.structure == "structured" and self.ticket != "none":
            raise ValueError("the lottery ticket (ticket: rewind | random) prunes single weights: use structure: unstructured")
        if self.ticket != "none" and self.finetune_epochs == 0:
            raise ValueError(f"ticket: {self.ticket} retrains the rewound network: finetune_epochs must be >= 1")
        return self


def _prune(cfg: PruneConfig, student: Student, ctx: Context) -> None:
    fraction = pruning.per_round(cfg.amount, cfg.rounds)
    start: nn.Module | None = None
    if cfg.ticket == "rewind":
        if ctx.initial is None:
            raise ValueError("ticket: rewind needs the teacher's initial weights (teacher: train)")
        start = ctx.initial
    elif cfg.ticket == "random":
        if ctx.random_initial is None:
            raise ValueError("ticket: random needs a freshly initialized network of the teacher's architecture")
        start = ctx.random_initial()
    for round_ in range(1, cfg.rounds + 1):
        if cfg.structure == "structured":
            if not pruning.can_shrink(student.net):
                raise ValueError("structured pruning shrinks the hidden layers of an MLP; this network has none it can shrink")
            student.notes["widths"] = pruning.shrink_hidden(student.net, fraction)  # type: ignore[arg-type]
        else:
            pruning.magnitude_prune(student.net, fraction, cfg.scope or "global")
            if start is not None:
                pruning.rewind(student.net, start)
        if cfg.finetune_epochs:
            stage = f"prune/round{round_}" if cfg.rounds > 1 else "prune"
            ctx.finetune(student.net, cfg.finetune_epochs, stage, cfg.lr)
    pruning.make_permanent(student.net)


COMPRESSION_STEPS.register("distill")(
    StepEntry(DistillConfig, _distill, trains=True, summary="response- and feature-based distillation into any registry model")
)
COMPRESSION_STEPS.register("quantize")(
    StepEntry(QuantizeConfig, _quantize, trains=False, summary="PTQ or QAT to 8, 4 or 2 bits")
)
COMPRESSION_STEPS.register("prune")(
    StepEntry(PruneConfig, _prune, trains=True, summary="magnitude, structured or lottery-ticket pruning")
)


def compress(teacher: nn.Module, steps: list[Config], ctx: Context) -> Student:
    """Apply `steps` in order to a copy of `teacher`."""
    ctx.teacher = teacher
    student = Student(copy.deepcopy(teacher))
    for step in steps:
        COMPRESSION_STEPS.get(step.kind).apply(step, student, ctx)  # type: ignore[attr-defined]
    return student


def weight_sparsity(net: nn.Module) -> float:
    """The fraction of exact zeros among the linear and convolution weights."""
    from lightning_modules.compression.quantize import weight_layers

    weights = [layer.weight.detach() for layer in weight_layers(net)]
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total) if total else 0.0


__all__ = [
    "COMPRESSION_STEPS", "Context", "DistillConfig", "PruneConfig", "QuantizeConfig", "StepEntry", "Student", "compress",
]
