"""Knowledge distillation: a student learns from a frozen teacher's outputs (response-based,
Hinton et al. 2015) and, optionally, from one of its hidden representations through a learned
projection (feature-based, FitNets' hint loss)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lightning_modules.compression.quantize import weight_layers
from lightning_modules.models import SupervisedModule


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, *, temperature: float, alpha: float,
    t_squared: bool = True,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels), over class logits
    (classes last). Softening by T scales the soft term's gradients by 1/T^2; the T^2 factor
    restores their size, so alpha weighs the two terms alike at any T."""
    classes = student.shape[-1]
    student, teacher, target = student.reshape(-1, classes), teacher.reshape(-1, classes), target.reshape(-1)
    soft = F.kl_div(F.log_softmax(student / temperature, -1), F.log_softmax(teacher / temperature, -1),
                    reduction="batchmean", log_target=True)
    return alpha * (temperature**2 if t_squared else 1.0) * soft + (1.0 - alpha) * F.cross_entropy(student, target)


def regression_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, *, alpha: float) -> torch.Tensor:
    """alpha * MSE(teacher's outputs) + (1 - alpha) * MSE(targets)."""
    return alpha * F.mse_loss(student, teacher) + (1.0 - alpha) * F.mse_loss(student, target)


def hidden_layers(net: nn.Module) -> list[nn.Module]:
    """The layers whose outputs are hidden representations: every weight layer but the last."""
    return weight_layers(net)[:-1]


class _Capture:
    """Keeps the latest output of a layer (a forward hook)."""

    def __init__(self, layer: nn.Module) -> None:
        self.value: torch.Tensor | None = None
        self.handle = layer.register_forward_hook(self)

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.value = output


class DistillationModule(SupervisedModule):
    """`SupervisedModule` whose training loss is the distillation loss against `teacher` (frozen,
    always in eval mode); validation still scores the labels alone. With `hint_weight > 0`
    the student's last hidden layer also matches the teacher's `hint_layer`-th hidden layer
    through a learned linear projection (mean squared error, flattened per sample)."""

    def __init__(
        self, net: nn.Module, teacher: nn.Module, *, temperature: float, alpha: float, t_squared: bool = True,
        hint_weight: float = 0.0, hint_layer: int = -1, **kwargs: Any,
    ) -> None:
        super().__init__(net, **kwargs)
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.temperature, self.alpha, self.t_squared = temperature, alpha, t_squared
        self.hint_weight = hint_weight
        self.projection: nn.Module | None = None
        if hint_weight > 0:
            teacher_layers, student_layers = hidden_layers(teacher), hidden_layers(net)
            if not teacher_layers or not student_layers:
                raise ValueError("a hint needs a hidden layer in both teacher and student")
            if not -len(teacher_layers) <= hint_layer < len(teacher_layers):
                raise ValueError(f"hint_layer {hint_layer}: the teacher has {len(teacher_layers)} hidden layers")
            self._teacher_hint, self._student_hint = _Capture(teacher_layers[hint_layer]), _Capture(student_layers[-1])
            with torch.no_grad():
                self.teacher(torch.zeros(1, *self._input_shape()))
                sample = self.net(torch.zeros(1, *self._input_shape()))
            del sample
            widths = (self._student_hint.value.flatten(1).shape[1], self._teacher_hint.value.flatten(1).shape[1])
            self.projection = nn.Linear(*widths)

    def _input_shape(self) -> tuple[int, ...]:
        first = weight_layers(self.net)[0]
        if isinstance(first, nn.Linear):
            return (first.in_features,)
        raise ValueError("feature-based distillation here needs a student whose first layer is linear (an MLP)")

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.teacher.eval()  # Lightning puts every submodule in train mode

    def training_loss_and_outputs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(x)
        with torch.no_grad():
            target = self.scoring.output(self.teacher(x))
        if self.task == "regression":
            loss = regression_distillation_loss(out, target, y, alpha=self.alpha)
        else:
            loss = distillation_loss(out, target, y, temperature=self.temperature, alpha=self.alpha, t_squared=self.t_squared)
        if self.projection is not None:
            hint = self._teacher_hint.value.flatten(1).detach()
            loss = loss + self.hint_weight * F.mse_loss(self.projection(self._student_hint.value.flatten(1)), hint)
        return loss, out
