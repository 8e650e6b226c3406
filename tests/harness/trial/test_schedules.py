"""Each LR schedule, stepped as a trial steps it, against its closed form (and torch's own
scheduler where torch has one); reduce-on-plateau in a real fit; impossible settings."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim import lr_scheduler

from harness.errors import SpecError
from harness.study import spec_from_dict
from harness.trial.training import fit_trial
from lightning_modules.optim import SCHEDULES, OptimizerConfig, ScheduleConfig, build_optimizer, build_scheduler

LR, EPOCHS, PER_EPOCH = 0.5, 12, 10
TOTAL = EPOCHS * PER_EPOCH


def lr_curve(cfg: ScheduleConfig) -> list[float]:
    """The LR used by each optimizer step of a run, as the module steps the schedule."""
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(2, 2))], OptimizerConfig(name="sgd", lr=LR))
    scheduler = build_scheduler(optimizer, cfg, TOTAL, PER_EPOCH)
    lrs = []
    for _ in range(TOTAL):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def torch_curve(make) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = make(optimizer)
    lrs = []
    for _ in range(TOTAL):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def cosine(progress: float, floor: float = 0.0) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


SAMPLED = (0, 1, 9, 10, 33, 59, 60, 61, 95, 119)
WARM = 2 * PER_EPOCH  # warmup steps where a case sets warmup_epochs: 2

CLOSED_FORMS = {
    "constant": ({}, lambda t: 1.0),
    "step": ({"step_epochs": 5, "gamma": 0.5}, lambda t: 0.5 ** (t // 50)),
    "exponential": ({"gamma": 0.8}, lambda t: 0.8 ** (t / PER_EPOCH)),
    "cosine": ({"min_lr_ratio": 0.1}, lambda t: cosine(t / TOTAL, 0.1)),
    "warmup_cosine": (
        {"warmup_epochs": 2},
        lambda t: (t + 1) / WARM if t < WARM else cosine((t - WARM) / (TOTAL - WARM)),
    ),
    "sgdr": (
        {"restart_epochs": 2, "restart_mult": 2},  # cycles of 20, 40, 80 steps
        lambda t: cosine(t / 20) if t < 20 else cosine((t - 20) / 40) if t < 60 else cosine((t - 60) / 80),
    ),
    "one_cycle": (
        {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
        # up from 1/10 to 1 by step 29 (0.25 * 120 - 1), then down to 1/1000 at step 119
        lambda t: 1 + (0.1 - 1) * 0.5 * (1 + math.cos(math.pi * t / 29))
        if t <= 29
        else 0.001 + (1 - 0.001) * 0.5 * (1 + math.cos(math.pi * (t - 29) / 90)),
    ),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_schedule_matches_its_closed_form(name: str):
    knobs, factor = CLOSED_FORMS[name]
    lrs = lr_curve(ScheduleConfig(name=name, **knobs))
    for step in SAMPLED:
        assert lrs[step] == pytest.approx(LR * factor(step), rel=1e-9, abs=1e-12), f"{name} at step {step}"


def test_every_per_step_schedule_has_a_closed_form_test():
    assert set(CLOSED_FORMS) == {n for n in SCHEDULES.names() if not SCHEDULES.get(n).per_epoch}


def test_warmup_prepends_a_linear_ramp_to_any_schedule():
    lrs = lr_curve(ScheduleConfig(name="step", warmup_epochs=2, step_epochs=5, gamma=0.5))
    assert lrs[:3] == pytest.approx([LR / WARM, 2 * LR / WARM, 3 * LR / WARM])
    assert lrs[WARM] == pytest.approx(LR) and lrs[WARM + 50] == pytest.approx(LR / 2)


@pytest.mark.parametrize(
    "cfg, make",
    [
        (
            ScheduleConfig(name="sgdr", restart_epochs=2, restart_mult=2, min_lr_ratio=0.1),
            lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=20, T_mult=2, eta_min=0.1 * LR),
        ),
        (
            ScheduleConfig(name="one_cycle", pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
            lambda o: lr_scheduler.OneCycleLR(
                o, max_lr=LR, total_steps=TOTAL, pct_start=0.25, div_factor=10.0, final_div_factor=100.0,
                cycle_momentum=False,
            ),
        ),
        (ScheduleConfig(name="exponential", gamma=0.8), lambda o: lr_scheduler.ExponentialLR(o, gamma=0.8 ** 0.1)),
        (
            ScheduleConfig(name="step", step_epochs=5, gamma=0.5),
            lambda o: lr_scheduler.StepLR(o, step_size=5 * PER_EPOCH, gamma=0.5),
        ),
    ],
    ids=["sgdr", "one_cycle", "exponential", "step"],
)
def test_schedule_agrees_with_torchs_scheduler(cfg: ScheduleConfig, make):
    assert lr_curve(cfg) == pytest.approx(torch_curve(make), rel=1e-6)


def test_reduce_on_plateau_cuts_the_lr_each_epoch_without_improvement():
    spec = spec_from_dict(
        {
            "name": "plateau",
            "model": {"kind": "mlp", "hidden": [8]},
            "train": {
                "max_epochs": 4,
                "batch_size": 256,
                # A 1e-6 LR cannot cut val/loss by the 50% `threshold` asks: every epoch after
                # the first is a plateau, and patience 0 cuts the LR after each one.
                "optimizer": {"name": "sgd", "lr": 1e-6},
                "schedule": {"name": "plateau", "factor": 0.5, "patience": 0, "threshold": 0.5},
            },
        }
    )
    lrs: list[float] = []
    fit_trial(spec, lambda metrics, trainer: lrs.append(metrics["lr"]))
    assert lrs == pytest.approx([1e-6, 0.5e-6, 0.25e-6, 0.125e-6])


def error_of(train: dict) -> str:
    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "s", "model": {"kind": "mlp", "hidden": [8]}, "train": train})
    return str(info.value)


def test_impossible_schedules_fail_validation():
    message = error_of({"max_epochs": 5, "schedule": {"name": "warmup_cosine", "warmup_epochs": 5}})
    assert "train: schedule.warmup_epochs (5) must be < max_epochs (5)" in message
    assert "needs schedule.warmup_epochs >= 1" in error_of({"schedule": {"name": "warmup_cosine"}})
    message = error_of({"max_epochs": 6, "schedule": {"name": "sgdr", "warmup_epochs": 2, "restart_epochs": 5}})
    assert "schedule.restart_epochs (5) must be <= max_epochs - warmup_epochs (4)" in message
    message = error_of({"max_epochs": 10, "schedule": {"name": "step"}})
    assert "schedule.step_epochs (10) must be < max_epochs" in message
    message = error_of({"schedule": {"name": "cosine", "gamma": 0.5}})
    assert "train.schedule: gamma is not used by the cosine schedule; it applies to: exponential, step" in message
    assert "warmup_epochs is not used by the one_cycle schedule" in error_of(
        {"schedule": {"name": "one_cycle", "warmup_epochs": 1}}
    )
    assert "train.schedule.pct_start" in error_of({"schedule": {"name": "one_cycle", "pct_start": 1.0}})
    assert "unknown schedule 'linear'" in error_of({"schedule": {"name": "linear"}})
