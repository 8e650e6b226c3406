"""Distillation: the loss against its formula, and a student that learns from a teacher."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from lightning_modules.compression.distill import DistillationModule, distillation_loss
from lightning_modules.data import ArrayDataModule, SplitConfig
from lightning_modules.models import MLPConfig, SupervisedModule, build_network
from lightning_modules.optim import OptimizerConfig, ScheduleConfig
from lightning_modules.training import fit_module


def test_loss_matches_the_formula_on_hand_made_logits() -> None:
    student = torch.tensor([[2.0, 0.0, -1.0]])
    teacher = torch.tensor([[1.0, 1.0, 0.0]])
    label = torch.tensor([0])
    T, alpha = 2.0, 0.25
    p = [math.exp(v / T) for v in (1.0, 1.0, 0.0)]
    p = [v / sum(p) for v in p]
    q = [math.exp(v / T) for v in (2.0, 0.0, -1.0)]
    q = [v / sum(q) for v in q]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = -math.log(math.exp(2.0) / sum(math.exp(v) for v in (2.0, 0.0, -1.0)))
    expected = alpha * T * T * kl + (1 - alpha) * ce
    got = distillation_loss(student, teacher, label, temperature=T, alpha=alpha)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    without = distillation_loss(student, teacher, label, temperature=T, alpha=alpha, t_squared=False)
    assert float(without) == pytest.approx(alpha * kl + (1 - alpha) * ce, rel=1e-5)
    # alpha 0 is plain cross-entropy; identical logits have no soft loss.
    assert float(distillation_loss(student, teacher, label, temperature=T, alpha=0.0)) == pytest.approx(ce, rel=1e-5)
    assert float(distillation_loss(teacher, teacher, torch.tensor([2]), temperature=T, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("hint_weight", [0.0, 1.0])
def test_a_student_learns_to_agree_with_its_teacher(hint_weight: float) -> None:
    L.seed_everything(0, verbose=False)
    dm = ArrayDataModule("digits", SplitConfig(val=0.2, test=0.2), ["standardize"], batch_size=64, seed=0)
    dm.setup()
    module = SupervisedModule(
        build_network(MLPConfig(hidden=[64]), dm.shape), task=dm.task, optimizer=OptimizerConfig(name="adamw", lr=3e-3),
        schedule=ScheduleConfig(), max_epochs=6, steps_per_epoch=dm.steps_per_epoch, log_metrics=False,
    )
    fit_module(module, dm, seed=0, max_epochs=6, sink=lambda m, t: None)
    teacher = module.net.eval()
    student_net = build_network(MLPConfig(hidden=[16]), dm.shape)
    x, _ = dm.split_tensors("val")
    before = float((student_net(x).argmax(1) == teacher(x).argmax(1)).float().mean())
    student = DistillationModule(
        student_net, teacher, temperature=4.0, alpha=1.0, hint_weight=hint_weight, task=dm.task,
        optimizer=OptimizerConfig(name="adamw", lr=3e-3), schedule=ScheduleConfig(), max_epochs=6,
        steps_per_epoch=dm.steps_per_epoch, log_metrics=False,
    )
    assert (student.projection is not None) == (hint_weight > 0)
    fit_module(student, dm, seed=0, max_epochs=6, sink=lambda m, t: None)
    after = float((student_net.eval()(x).argmax(1) == teacher(x).argmax(1)).float().mean())
    assert after > 0.75 and after > before + 0.5  # alpha 1: it saw only the teacher, never a label
    assert all(not p.requires_grad for p in teacher.parameters())


def test_a_regression_student_matches_its_teachers_outputs() -> None:
    from lightning_modules.compression.distill import regression_distillation_loss

    student, teacher, target = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0]), torch.tensor([0.0, 2.0])
    # alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, target)
    expected = 0.25 * (0.25 / 2) + 0.75 * (1.0 / 2)
    assert float(regression_distillation_loss(student, teacher, target, alpha=0.25)) == pytest.approx(expected)
