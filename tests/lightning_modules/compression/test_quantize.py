"""Quantization math: round trips within half a scale step, packing, the straight-through estimator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_modules.compression.quantize import (
    Scheme,
    add_fake_quant,
    dequantize,
    pack,
    quantize_tensor,
    remove_fake_quant,
    unpack,
)


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_round_trip_error_is_within_half_a_step(bits: int, per_channel: bool, symmetric: bool) -> None:
    w = torch.randn(12, 30, generator=torch.Generator().manual_seed(bits))
    scheme = Scheme(bits, per_channel, symmetric)
    q, scale, zero = quantize_tensor(w, scheme)
    assert int(q.min()) >= scheme.qmin and int(q.max()) <= scheme.qmax
    assert len(scale) == (12 if per_channel else 1)
    step = scale.reshape(-1, 1) if per_channel else scale
    assert ((w - dequantize(q, scale, zero)).abs() <= step / 2 + 1e-6).all()
    # Fewer bits, coarser steps: an 8-bit round trip is far closer than a 2-bit one.
    if bits == 8:
        assert float((w - dequantize(q, scale, zero)).abs().max()) < float(w.abs().max()) / 100


def test_zero_stays_exactly_zero() -> None:
    w = torch.tensor([[0.0, 0.3, -1.2], [0.0, 2.0, 0.7]])
    for symmetric in (True, False):
        q, scale, zero = quantize_tensor(w, Scheme(4, True, symmetric))
        assert (dequantize(q, scale, zero)[w == 0] == 0).all()


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_pack_unpack_and_packed_size(bits: int) -> None:
    scheme = Scheme(bits, True, False)
    q, _, _ = quantize_tensor(torch.randn(7, 13), scheme)
    data = pack(q.numpy(), bits, -scheme.qmin)
    assert len(data) == -(-q.numel() * bits // 8)  # bits per weight, rounded up to a byte
    assert (unpack(data, bits, -scheme.qmin, q.numel()).reshape(q.shape) == q.numpy()).all()


def test_fake_quant_passes_gradients_straight_through() -> None:
    layer = nn.Linear(6, 3)
    add_fake_quant(layer, Scheme(2, True, True))
    x = torch.randn(5, 6)
    layer(x).sum().backward()
    grad = layer.parametrizations.weight.original.grad
    # d(sum(xW^T))/dW = column sums of x for every row, unchanged by the rounding.
    assert torch.allclose(grad, x.sum(0).expand(3, 6))
    levels = torch.unique(layer.weight.detach()[0]).numel()
    assert levels <= 3  # ternary weights in the forward pass
    remove_fake_quant(layer)
    assert not hasattr(layer, "parametrizations") or "weight" not in layer.parametrizations
