"""Regularizers on real digits data: what each one does to weights, losses and gradients,
that evaluation never sees the training-only ones, and how bad settings are rejected."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from harness.errors import SpecError
from harness.study import spec_from_dict
from harness.trial.training import fit_trial
from lightning_modules.data import ArrayDataModule, DataShape, SplitConfig
from lightning_modules.models import MLPConfig, SupervisedModule, build_network
from lightning_modules.optim import OptimizerConfig, ScheduleConfig, build_optimizer
from lightning_modules.regularizers import (
    GradientClipConfig,
    RegularizationConfig,
    weight_statistics,
)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    dm = ArrayDataModule("digits", SplitConfig(val=0.15, test=0.15), ["standardize"], batch_size=64, seed=0)
    return dm.split_tensors("train")


def module(hidden: list[int] | None = None, dropout: float = 0.0, **settings) -> SupervisedModule:
    torch.manual_seed(0)
    net = build_network(MLPConfig(hidden=hidden or [32], dropout=dropout), DataShape("tabular", (64,), 10))
    clip = settings.pop("gradient_clip", None)
    return SupervisedModule(
        net, "classification", OptimizerConfig(name="sgd", lr=0.1), ScheduleConfig(), 1, 1,
        regularization=RegularizationConfig(**settings), gradient_clip=clip,
    )


def train(m: SupervisedModule, data: tuple[torch.Tensor, torch.Tensor], steps: int) -> SupervisedModule:
    optimizer = build_optimizer(m.parameters(), m.optimizer_cfg)
    x, y = data
    for _ in range(steps):
        m.manual_step(x, y, optimizer)
    return m


def test_l1_gives_exact_zeros_where_l2_gives_none(digits):
    strength = 0.01
    l1 = weight_statistics(train(module(l1=strength), digits, 60)._weights)
    l2 = weight_statistics(train(module(l2=strength), digits, 60)._weights)
    plain = weight_statistics(train(module(), digits, 60)._weights)
    assert l1["weights/zero_frac"] > 0.2  # the proximal step sets weights to exactly 0
    assert l2["weights/zero_frac"] == 0.0 and plain["weights/zero_frac"] == 0.0
    assert l2["weights/mean_abs"] < plain["weights/mean_abs"]  # L2 shrinks without zeroing


def test_elastic_net_ends_are_l1_and_l2(digits):
    def final(**settings) -> list[torch.Tensor]:
        return [w.detach().clone() for w in train(module(**settings), digits, 20)._weights]

    for pure, mixed in (
        (final(l1=0.01), final(elastic_net={"strength": 0.01, "alpha": 1.0})),
        (final(l2=0.01), final(elastic_net={"strength": 0.01, "alpha": 0.0})),
    ):
        assert all(torch.equal(a, b) for a, b in zip(pure, mixed))
    assert not torch.equal(final(l1=0.01)[0], final(elastic_net={"strength": 0.01, "alpha": 0.5})[0])


def test_dropout_is_inverted_in_training_and_off_in_eval():
    m = module(hidden=[256], dropout=0.5)
    dropout = next(layer for layer in m.net if isinstance(layer, torch.nn.Dropout))
    torch.manual_seed(1)
    h = torch.rand(4000) + 0.5
    m.train()
    kept = dropout(h)
    assert 0.45 < (kept == 0).float().mean() < 0.55
    assert torch.allclose(kept[kept != 0], 2.0 * h[kept != 0])  # survivors scaled by 1 / (1 - p)
    m.eval()
    x = torch.randn(8, 64)
    assert torch.equal(m(x), m(x)) and torch.equal(dropout(h), h)


def test_label_smoothing_loss_follows_its_formula(digits):
    eps = 0.2
    m = module(label_smoothing=eps)
    x, y = digits[0][:100], digits[1][:100]
    smoothed, out = m.training_loss_and_outputs(x, y)
    log_p = F.log_softmax(out, dim=-1)
    by_formula = (1 - eps) * F.nll_loss(log_p, y) + eps * (-log_p.mean(dim=-1)).mean()
    assert smoothed.item() == pytest.approx(by_formula.item(), rel=1e-6)
    assert smoothed.item() == pytest.approx(F.cross_entropy(out, y, label_smoothing=eps).item(), rel=1e-6)
    plain, _ = m.loss_and_outputs((x, y))  # evaluation: plain cross-entropy
    assert plain.item() == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-6)
    assert smoothed.item() != pytest.approx(plain.item(), rel=1e-3)


def test_mixup_mixes_inputs_and_losses_in_training_only(digits):
    alpha = 0.4
    m = module(mixup_alpha=alpha)
    x, y = digits[0][:64], digits[1][:64]
    torch.manual_seed(5)
    loss, _ = m.training_loss_and_outputs(x, y)
    torch.manual_seed(5)  # the same draws, in the order mixup takes them
    lam = float(torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha)).sample())
    perm = torch.randperm(64)
    out = m(lam * x + (1 - lam) * x[perm])
    expected = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])
    assert 0 < lam < 1 and loss.item() == pytest.approx(expected.item(), rel=1e-6)
    plain = module()  # same seed, same initial weights
    assert m.loss_and_outputs((x, y))[0].item() == pytest.approx(plain.loss_and_outputs((x, y))[0].item())


def test_input_noise_is_train_only(digits):
    m = module(input_noise=1.0)
    x, y = digits[0][:200], digits[1][:200]
    first, second = m.training_loss_and_outputs(x, y)[1], m.training_loss_and_outputs(x, y)[1]
    assert not torch.equal(first, second)  # fresh noise every step
    m.eval()
    evaluated = m.evaluate([(x, y)])
    assert evaluated["test/loss"] == pytest.approx(F.cross_entropy(m(x), y).item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["norm", "value"])
def test_gradient_clipping_bounds_the_gradient(digits, kind):
    bound = 0.05
    m = module(gradient_clip=GradientClipConfig(kind=kind, max=bound))
    train(m, digits, 1)
    grads = [p.grad for p in m.parameters()]
    if kind == "norm":
        total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        assert total.item() <= bound * (1 + 1e-5)
        assert m._unclipped_norm is not None and m._unclipped_norm.item() > 2 * bound  # it did clip
    else:
        bound32 = torch.tensor(bound)  # the bound as the float32 gradients hold it
        assert all(bool((g.abs() <= bound32).all()) for g in grads)
        assert sum(int((g.abs() == bound32).sum()) for g in grads) > 0  # it did clip


def test_evidence_metrics_each_epoch():
    spec = spec_from_dict(
        {"name": "e", "model": {"kind": "mlp", "hidden": [16, 8]}, "train": {"max_epochs": 2, "batch_size": 128}}
    )
    rows: list[dict] = []
    fit_trial(spec, lambda metrics, trainer: rows.append(metrics))
    last = rows[-1]
    assert {"grad_norm/1.weight", "grad_norm/3.weight", "grad_norm/5.weight", "grad_norm/total"} <= set(last)
    assert all(last[f"grad_norm/{i}.weight"] > 0 for i in (1, 3, 5))
    assert 0 < last["weights/mean_abs"] < 1 and last["weights/zero_frac"] == 0.0


def test_early_stopping_ends_the_trial_with_its_reason():
    spec = spec_from_dict(
        {
            "name": "es",
            "model": {"kind": "mlp", "hidden": [8]},
            # No epoch can improve val/loss by more than 10: patience 2 stops after epoch 3.
            "train": {"max_epochs": 20, "batch_size": 256, "early_stopping": {"patience": 2, "min_delta": 10.0}},
        }
    )
    rows: list[dict] = []
    fit_trial(spec, lambda metrics, trainer: rows.append(metrics))
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert "stop_reason" not in rows[1]
    assert rows[-1]["stop_reason"].startswith("early_stopping: val/loss did not improve by more than 10 for 2 epochs")


def test_stop_reason_reaches_the_child_run(mlflow_server: str):
    from harness.run.plan import StudyPlan
    from harness.tracking.runs import start_study_run
    from harness.tracking.trials import ChildRuns

    spec = spec_from_dict({"name": "es-run", "train": {"max_epochs": 20}})
    study = start_study_run(spec, mlflow_server, "random", "training")
    runs = ChildRuns(study, StudyPlan.of(spec), "fifo")
    reason = "early_stopping: val/loss did not improve by more than 0 for 2 epochs (best 0.1 at epoch 1)"
    runs.log_epoch("t1", {}, {"epoch": 1, "val/loss": 0.1})
    runs.log_epoch("t1", {}, {"epoch": 3, "val/loss": 0.2, "stop_reason": reason})
    assert runs.close("t1", {}, epochs=3, error=None) == "FINISHED"
    run = runs.client.get_run(runs.run_ids()["t1"])
    assert run.data.tags["stop_reason"] == reason and run.data.tags["status"] == "FINISHED"
    runs.log_weight_histogram("t1", {}, {"edges": [-1.0, 0.0, 1.0], "counts": [3.0, 4.0]})
    assert {a.path for a in runs.client.list_artifacts(run.info.run_id)} >= {
        "weights_histogram.json", "weights_histogram.png"
    }


def error_of(train: dict) -> str:
    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "s", "model": {"kind": "mlp", "hidden": [8]}, "train": {"max_epochs": 3, **train}})
    return str(info.value)


def test_bad_regularizer_settings_fail_validation_with_their_path():
    message = error_of({"regularization": {"l1": -0.1}})
    assert "train.regularization.l1: Input should be greater than or equal to 0 (given -0.1)" in message
    message = error_of({"regularization": {"elastic_net": {"strength": -1}}})
    assert "train.regularization.elastic_net.strength" in message
    assert "train.regularization.label_smoothing" in error_of({"regularization": {"label_smoothing": 1.0}})
    assert "train.regularization.mixup_alpha" in error_of({"regularization": {"mixup_alpha": -0.2}})
    assert "train.regularization.dropout: unknown key" in error_of({"regularization": {"dropout": 0.1}})
    assert "train.gradient_clip.max" in error_of({"gradient_clip": {"kind": "norm", "max": 0}})
    assert "train.gradient_clip.kind" in error_of({"gradient_clip": {"kind": "l2", "max": 1}})
    assert "train.early_stopping.patience" in error_of({"early_stopping": {"patience": 0}})
    with pytest.raises(SpecError) as info:  # searched values are checked too
        spec_from_dict({"name": "s", "search": {"space": {"train.regularization.l2": {"uniform": [-0.1, 0.1]}}}})
    assert "search.space.train.regularization.l2: value -0.1 is not allowed" in str(info.value)
