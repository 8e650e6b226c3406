"""Optimizers: their knobs, decoupled weight decay against an explicit L2 penalty, batch size
(full / N / 1) and the linear scaling rule, and the errors for settings that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from harness.cli import main
from harness.errors import SpecError
from harness.study import spec_from_dict
from harness.trial.build import build
from lightning_modules.data import DataShape
from lightning_modules.models import MLPConfig, SupervisedModule, build_network
from lightning_modules.optim import OPTIMIZERS, OptimizerConfig, ScheduleConfig, build_optimizer
from lightning_modules.regularizers import RegularizationConfig


def test_each_optimizer_is_built_with_its_knobs():
    params = [torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer(params, OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    rms = build_optimizer(params, OptimizerConfig(name="rmsprop", lr=0.01, alpha=0.9, momentum=0.5, eps=1e-6))
    assert isinstance(rms, torch.optim.RMSprop) and (rms.defaults["alpha"], rms.defaults["momentum"]) == (0.9, 0.5)
    adam = build_optimizer(params, OptimizerConfig(name="adam", lr=0.01, betas=(0.8, 0.99)))
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.8, 0.99)
    assert set(OPTIMIZERS.names()) == {"adam", "adamw", "rmsprop", "sgd"}


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adamw"])
def test_weight_decay_is_decoupled_and_spares_biases(name: str):
    weight, bias = torch.nn.Parameter(torch.full((2, 2), 3.0)), torch.nn.Parameter(torch.full((2,), 3.0))
    optimizer = build_optimizer([weight, bias], OptimizerConfig(name=name, lr=0.1, weight_decay=0.5))
    (0.0 * (weight.sum() + bias.sum())).backward()  # a zero gradient: only the decay moves weights
    optimizer.step()
    assert torch.allclose(weight, torch.full((2, 2), 3.0 * (1 - 0.1 * 0.5)))
    assert torch.equal(bias.detach(), torch.full((2,), 3.0))


def fit_steps(optimizer_cfg: OptimizerConfig, l2: float, steps: int = 5) -> list[torch.Tensor]:
    torch.manual_seed(0)
    net = build_network(MLPConfig(hidden=[8]), DataShape("tabular", (4,), 3))
    m = SupervisedModule(
        net, "classification", optimizer_cfg, ScheduleConfig(), 1, 1, regularization=RegularizationConfig(l2=l2)
    )
    optimizer = build_optimizer(m.parameters(), optimizer_cfg)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    for _ in range(steps):
        m.manual_step(x, y, optimizer)
    return [p.detach().clone() for p in m.parameters()]


def test_adam_with_l2_is_coupled_decay_and_differs_from_adamw():
    coupled = fit_steps(OptimizerConfig(name="adam", lr=0.01), l2=0.1)
    decoupled = fit_steps(OptimizerConfig(name="adamw", lr=0.01, weight_decay=0.1), l2=0.0)
    # The reference: torch's Adam with its (coupled, L2-in-the-gradient) weight_decay on the weights.
    torch.manual_seed(0)
    net = build_network(MLPConfig(hidden=[8]), DataShape("tabular", (4,), 3))
    weights = [p for p in net.parameters() if p.ndim >= 2]
    others = [p for p in net.parameters() if p.ndim < 2]
    reference = torch.optim.Adam([{"params": weights, "weight_decay": 0.1}, {"params": others}], lr=0.01)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))  # drawn as `fit_steps` draws them
    for _ in range(5):
        reference.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        reference.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(coupled, net.parameters()))
    assert not torch.allclose(coupled[0], decoupled[0], atol=1e-4)


def test_lr_scaling_rules():
    cfg = OptimizerConfig(lr=0.1, lr_scaling={"reference_batch_size": 64})
    assert cfg.for_batch_size(256).lr == pytest.approx(0.4) and cfg.for_batch_size(256).lr_scaling is None
    sqrt = OptimizerConfig(lr=0.1, lr_scaling={"reference_batch_size": 64, "rule": "sqrt"})
    assert sqrt.for_batch_size(16).lr == pytest.approx(0.05)
    assert OptimizerConfig(lr=0.1).for_batch_size(1000).lr == 0.1


STUDY = {"name": "b", "model": {"kind": "mlp", "hidden": [8]}, "train": {"max_epochs": 2}}


def with_train(**train) -> dict:
    return {**STUDY, "train": {**STUDY["train"], **train}}


def test_batch_size_full_n_and_one():
    full_dm, full = build(spec_from_dict(with_train(batch_size="full", optimizer={"name": "sgd", "lr": 0.1})))
    assert full_dm.batch_size == full_dm.num_train and full.steps_per_epoch == 1
    pure_dm, pure = build(spec_from_dict(with_train(batch_size=1)))
    assert pure.steps_per_epoch == pure_dm.num_train
    scaled = spec_from_dict(
        with_train(batch_size="full", optimizer={"name": "sgd", "lr": 0.1, "lr_scaling": {"reference_batch_size": 100}})
    )
    dm, module = build(scaled)
    assert module.optimizer_cfg.lr == pytest.approx(0.1 * dm.num_train / 100)


def error_of(raw: dict) -> str:
    """The message of the spec's validation, then of the pre-flight check against the data."""
    from harness.run.preflight import check_data

    with pytest.raises(SpecError) as info:
        check_data(spec_from_dict(raw))
    return str(info.value)


def test_impossible_optimizer_settings_fail_validation():
    message = error_of(with_train(batch_size=5000))
    assert "train.batch_size: 5000 is larger than the train split of digits (1257 samples)" in message
    message = error_of({**STUDY, "search": {"space": {"train.batch_size": {"choice": [32, "full", 2000]}}}})
    assert "search.space.train.batch_size: 2000 is larger than the train split" in message
    assert "train.batch_size: Input should be an integer >= 1 or 'full'" in error_of(with_train(batch_size="all"))
    message = error_of(with_train(batch_size=0))
    assert "train.batch_size: Input should be greater than or equal to 1 (given 0)" in message
    message = error_of(with_train(optimizer={"name": "adam", "momentum": 0.9}))
    assert "train.optimizer: momentum is not used by adam; it applies to: rmsprop, sgd" in message
    assert "nesterov needs momentum > 0" in error_of(with_train(optimizer={"name": "sgd", "nesterov": True}))
    assert "train.optimizer.weight_decay" in error_of(with_train(optimizer={"weight_decay": -0.1}))
    assert "train.optimizer.betas" in error_of(with_train(optimizer={"name": "adam", "betas": [0.9, 1.0]}))
    assert "train.optimizer.lr_scaling.reference_batch_size" in error_of(
        with_train(optimizer={"lr_scaling": {"reference_batch_size": 0}})
    )
    message = error_of(with_train(optimizer={"name": "lamb"}))
    assert "unknown optimizer 'lamb'; known: adam, adamw, rmsprop, sgd" in message


def test_cli_rejects_an_oversized_batch_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    assert main(["validate", str(study), "--set", "train.batch_size=4096"]) == 2
    assert "train.batch_size: 4096 is larger than the train split" in capsys.readouterr().err
    assert main(["validate", str(study), "--set", "train.batch_size=full"]) == 0


def test_lr_find_trains_at_the_range_tests_suggestion_and_reports_it():
    from harness.trial.lr_find import LRFindSettings, sweep
    from harness.trial.training import LR_FOUND, fit_trial

    spec = spec_from_dict(with_train(lr_find=True, optimizer={"name": "sgd", "lr": 0.05}, schedule={"name": "constant"}))
    assert "lr_find" in spec.to_dict()["train"] and "lr_find" not in spec_from_dict(STUDY).to_dict()["train"]
    expected = sweep(spec, LRFindSettings())[0].suggestion
    rows: list[dict] = []
    fit_trial(spec, lambda metrics, trainer: rows.append(metrics))
    assert len(rows) == 2 and all(row[LR_FOUND] == pytest.approx(expected) for row in rows)
    # It trained at the suggestion, not at the configured 0.05 (the constant schedule keeps it).
    assert rows[-1]["lr"] == pytest.approx(expected) and abs(expected - 0.05) > 1e-3
    plain: list[dict] = []
    fit_trial(spec_from_dict(with_train(optimizer={"name": "sgd", "lr": 0.05}, schedule={"name": "constant"})),
              lambda metrics, trainer: plain.append(metrics))
    assert LR_FOUND not in plain[-1] and plain[-1]["lr"] == pytest.approx(0.05)


def test_lr_find_is_refused_where_a_trial_trains_no_single_model():
    kfold = {**with_train(lr_find=True), "data": {"dataset": "digits", "split": {"kind": "kfold", "folds": 3}}}
    assert "train.lr_find: true runs the range test before a plain training trial" in error_of(kfold)
