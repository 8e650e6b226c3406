"""Uniform integer quantization of weight tensors: scales and zero points (per tensor or per
output channel, symmetric or asymmetric), fake quantization with a straight-through estimator
for quantization-aware training, and bit packing for the shipped low-bit artifact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

BITS = (2, 4, 8)


@dataclass(frozen=True)
class Scheme:
    """How a weight tensor is quantized: `bits` wide integers, one scale per tensor or per
    output channel (dim 0), symmetric around zero (zero point 0) or asymmetric."""

    bits: int = 8
    per_channel: bool = True
    symmetric: bool = True

    @property
    def qmin(self) -> int:
        # Symmetric uses the restricted range [-(2^(b-1)-1), 2^(b-1)-1], so that -w maps to -q.
        return -(2 ** (self.bits - 1) - 1) if self.symmetric else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1


def _ranges(w: torch.Tensor, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    flat = w.detach().reshape(w.shape[0], -1) if per_channel else w.detach().reshape(1, -1)
    return flat.min(dim=1).values, flat.max(dim=1).values


def scale_and_zero_point(w: torch.Tensor, scheme: Scheme) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (shape [out]) or per-tensor (shape [1]) scales and integer zero points."""
    lo, hi = _ranges(w, scheme.per_channel)
    # The range always holds zero: a zero weight (a pruned one) must stay exactly zero.
    lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
    tiny = torch.finfo(torch.float32).tiny
    if scheme.symmetric:
        scale = (torch.maximum(-lo, hi) / scheme.qmax).clamp(min=tiny)
        zero = torch.zeros_like(scale)
    else:
        scale = ((hi - lo) / (scheme.qmax - scheme.qmin)).clamp(min=tiny)
        zero = (scheme.qmin - torch.round(lo / scale)).clamp(scheme.qmin, scheme.qmax)
    return scale, zero


def _broadcast(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (w.ndim - 1))) if v.numel() > 1 else v.reshape(())


def quantize_tensor(w: torch.Tensor, scheme: Scheme) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integers q in [qmin, qmax], scales and zero points with w ~ (q - zero) * scale; each
    weight's error is at most half its scale."""
    scale, zero = scale_and_zero_point(w, scheme)
    q = torch.clamp(torch.round(w / _broadcast(scale, w)) + _broadcast(zero, w), scheme.qmin, scheme.qmax)
    return q.to(torch.int32), scale, zero


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    w = q.to(torch.float32)
    return (w - _broadcast(zero, w)) * _broadcast(scale, w)


def fake_quantize(w: torch.Tensor, scheme: Scheme) -> torch.Tensor:
    """The dequantized weights in the forward pass; in the backward pass the gradient passes
    through unchanged (the straight-through estimator), so training can move the weights."""
    q, scale, zero = quantize_tensor(w, scheme)
    return w + (dequantize(q, scale, zero) - w).detach()


class FakeQuant(nn.Module):
    """A parametrization: the layer computes with its weights as they will be quantized."""

    def __init__(self, scheme: Scheme) -> None:
        super().__init__()
        self.scheme = scheme

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quantize(w, self.scheme)


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """The layers whose weights compression acts on: linear and convolution layers."""
    return [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def add_fake_quant(net: nn.Module, scheme: Scheme) -> None:
    for layer in weight_layers(net):
        parametrize.register_parametrization(layer, "weight", FakeQuant(scheme))


def remove_fake_quant(net: nn.Module) -> None:
    """Back to plain float weights (those quantization-aware training left), unquantized:
    quantizing them is the export's job."""
    for layer in weight_layers(net):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)


def pack(q: np.ndarray, bits: int, offset: int) -> bytes:
    """Integers of `bits` width (shifted by `offset` to be non-negative) packed 8 // bits per byte."""
    values = (q.astype(np.int64).ravel() + offset).astype(np.uint8)
    per_byte = 8 // bits
    values = np.pad(values, (0, -len(values) % per_byte))
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    return (values.reshape(-1, per_byte) << shifts).sum(axis=1, dtype=np.uint16).astype(np.uint8).tobytes()


def unpack(data: bytes, bits: int, offset: int, count: int) -> np.ndarray:
    per_byte = 8 // bits
    raw = np.frombuffer(data, dtype=np.uint8)
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    values = (raw[:, None] >> shifts) & ((1 << bits) - 1)
    return values.ravel()[:count].astype(np.int32) - offset
