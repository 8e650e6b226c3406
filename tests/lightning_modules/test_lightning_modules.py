"""The pure Lightning layer: data splits without leakage, the MLP, optimizers and schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_modules.data import ArrayDataModule, DataShape, SplitConfig, TensorBatches
from lightning_modules.models import MLPConfig, SupervisedModule, build_network
from lightning_modules.optim import OptimizerConfig, ScheduleConfig, build_optimizer, build_scheduler


@pytest.fixture(scope="module")
def digits() -> ArrayDataModule:
    dm = ArrayDataModule("digits", SplitConfig(val=0.15, test=0.15), ["standardize"], batch_size=64, seed=0)
    dm.setup()
    return dm


def test_split_is_disjoint_complete_and_stratified(digits: ArrayDataModule):
    sizes = {name: len(digits.split_tensors(name)[1]) for name in ("train", "val", "test")}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == pytest.approx(0.15 * 1797, abs=2)
    fractions = [np.bincount(digits.split_tensors(n)[1].numpy(), minlength=10) / sizes[n] for n in sizes]
    assert np.abs(fractions[0] - fractions[2]).max() < 0.02  # class balance kept in test
    rows = {name: {tuple(r.ravel()) for r in digits.split_tensors(name)[0].numpy().round(5)} for name in sizes}
    assert not rows["train"] & rows["test"]


def test_scaler_is_fitted_on_train_only(digits: ArrayDataModule):
    train_x = digits.split_tensors("train")[0].numpy()
    assert train_x.shape[1:] == (1, 8, 8)  # digits are images: standardized per channel, shape kept
    assert abs(train_x.mean()) < 1e-5 and train_x.std() == pytest.approx(1.0, abs=1e-4)
    val_x = digits.split_tensors("val")[0].numpy()
    assert abs(val_x.mean()) > 1e-3  # val is transformed with train's statistics


def test_tensor_batches_cover_every_sample_once():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    torch.manual_seed(0)
    batches = list(TensorBatches(x, y, batch_size=4, shuffle=True))
    assert [len(b[1]) for b in batches] == [4, 4, 2] and len(TensorBatches(x, y, 4, True)) == 3
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))


@pytest.mark.parametrize("task, outputs", [("classification", 10), ("regression", 1)])
def test_mlp_heads(task: str, outputs: int):
    shape = DataShape("tabular", (64,), outputs)
    net = build_network(MLPConfig(hidden=[16, 8], dropout=0.1, activation="gelu"), shape)
    module = SupervisedModule(net, task, OptimizerConfig(), ScheduleConfig(), max_epochs=1, steps_per_epoch=1)
    out = module(torch.randn(5, 64))
    assert out.shape == ((5, 10) if task == "classification" else (5,))


def test_dropout_only_in_training_mode():
    net = build_network(MLPConfig(hidden=[32], dropout=0.5), DataShape("tabular", (8,), 2))
    x = torch.randn(4, 8)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


def test_training_reduces_the_loss(digits: ArrayDataModule):
    net = build_network(MLPConfig(hidden=[32]), digits.shape)
    module = SupervisedModule(net, "classification", OptimizerConfig(lr=0.01), ScheduleConfig(), 1, 1)
    opt = build_optimizer(module.parameters(), module.optimizer_cfg)
    x, y = digits.split_tensors("train")
    before = module.loss_and_outputs((x, y))[0].item()
    for _ in range(30):
        opt.zero_grad()
        module.loss_and_outputs((x, y))[0].backward()
        opt.step()
    assert module.loss_and_outputs((x, y))[0].item() < 0.5 * before


def test_cosine_with_warmup_matches_closed_form():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimizerConfig(name="sgd", lr=1.0))
    steps_per_epoch, epochs, warmup = 10, 5, 1
    sched = build_scheduler(opt, ScheduleConfig(name="cosine", warmup_epochs=warmup), epochs * steps_per_epoch, steps_per_epoch)
    lrs = []
    for _ in range(epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    w = warmup * steps_per_epoch
    assert lrs[0] == pytest.approx(1 / w) and lrs[w - 1] == pytest.approx(1.0)
    for step in (w, w + 7, w + 20, epochs * steps_per_epoch - 1):
        expected = 0.5 * (1 + math.cos(math.pi * (step - w) / (epochs * steps_per_epoch - w)))
        assert lrs[step] == pytest.approx(expected)


def test_optimizers_use_their_settings():
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(params, OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    adamw = build_optimizer(params, OptimizerConfig(name="adamw", lr=0.1, weight_decay=0.01))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.01
