"""Pruning: masks hold through training, structured pruning shrinks the network and keeps the
kept units' outputs, rewinding restores initial values."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lightning_modules.compression.prune import (
    can_shrink,
    magnitude_prune,
    make_permanent,
    parameter_counts,
    per_round,
    rewind,
    shrink_hidden,
)
from lightning_modules.compression.steps import weight_sparsity


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruned_weights_stay_zero_through_training(scope: str) -> None:
    net = mlp()
    magnitude_prune(net, 0.7, scope)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    x, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
    for _ in range(20):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    make_permanent(net)
    assert weight_sparsity(net) == pytest.approx(0.7, abs=0.01)
    if scope == "layer":
        for layer in (net[1], net[3], net[5]):
            assert float((layer.weight == 0).float().mean()) == pytest.approx(0.7, abs=0.05)


def test_iterative_rounds_reach_the_target() -> None:
    net = mlp()
    for _ in range(3):
        magnitude_prune(net, per_round(0.9, 3), "global")
    make_permanent(net)
    assert weight_sparsity(net) == pytest.approx(0.9, abs=0.01)
    total, nonzero = parameter_counts(net)
    assert nonzero < total


def test_structured_pruning_shrinks_and_keeps_the_kept_units() -> None:
    net = mlp().eval()
    before = copy.deepcopy(net)
    x = torch.randn(10, 20)
    widths = shrink_hidden(net, 0.5)
    assert widths == [8, 4] and net[1].out_features == 8 and net[3].in_features == 8 and net[5].in_features == 4
    assert parameter_counts(net)[0] < parameter_counts(before)[0]
    # The kept first-layer units compute exactly what they computed before.
    kept = [i for i in range(16) if any(torch.equal(before[1].weight[i], row) for row in net[1].weight)]
    assert len(kept) == 8
    assert torch.allclose(before[2](before[1](x))[:, kept], net[2](net[1](x)))
    assert can_shrink(net) and not can_shrink(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 2)))


def test_rewind_restores_initial_values_and_keeps_masks() -> None:
    initial = mlp()
    net = copy.deepcopy(initial)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    magnitude_prune(net, 0.5, "global")
    rewind(net, initial)
    make_permanent(net)
    kept = net[1].weight != 0
    assert torch.equal(net[1].weight[kept], initial[1].weight[kept])
    assert weight_sparsity(net) == pytest.approx(0.5, abs=0.01)
