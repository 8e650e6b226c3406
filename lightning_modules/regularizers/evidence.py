"""What regularizers and optimizers do to a network, measured once per epoch (never per step)."""

from __future__ import annotations

import math

import torch
from torch import nn


def weight_tensors(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The trainable weight tensors (2+ dimensions) by name: what penalties act on."""
    return [(name, p) for name, p in net.named_parameters() if p.requires_grad and p.ndim >= 2]


@torch.no_grad()
def weight_statistics(weights: list[torch.Tensor]) -> dict[str, float]:
    """Mean |w|, fraction of exact zeros and global L2 norm over all weight tensors."""
    count = sum(w.numel() for w in weights)
    if count == 0:  # no weights at all (a degree-0 polynomial is a bias alone): nothing to describe
        return {}
    # Per tensor: sum of |w|, entries not exactly zero (NaN counts as not zero; `count_nonzero`
    # costs half of summing `w == 0`) and the L2 norm (fused); read in two transfers.
    n = len(weights)
    sums = torch.stack([*(w.abs().sum() for w in weights), *torch._foreach_norm(weights)]).tolist()
    nonzero = sum(torch.stack([torch.count_nonzero(w) for w in weights]).tolist())
    return {
        "weights/mean_abs": sum(sums[:n]) / count,
        "weights/zero_frac": (count - nonzero) / count,
        "weights/norm": math.sqrt(sum(v * v for v in sums[n:])),
    }


GradientSnapshot = tuple[list[str], torch.Tensor]  # weight names, their gradients' L2 norms


@torch.no_grad()
def gradient_snapshot(named: list[tuple[str, torch.Tensor]]) -> GradientSnapshot | None:
    """The L2 norm of each weight tensor's current gradient, kept on the device (no sync)."""
    present = [(name, w.grad) for name, w in named if w.grad is not None]
    if not present:
        return None
    return [name for name, _ in present], torch.stack(torch._foreach_norm([g for _, g in present]))


def gradient_norms(snapshot: GradientSnapshot | None) -> dict[str, float]:
    """`grad_norm/<name>` per weight tensor and `grad_norm/total`, their global norm."""
    if snapshot is None:
        return {}
    names, norms = snapshot
    values = norms.tolist()
    out = {f"grad_norm/{name}": value for name, value in zip(names, values)}
    out["grad_norm/total"] = math.sqrt(sum(v * v for v in values))
    return out


@torch.no_grad()
def weight_histogram(weights: list[torch.Tensor], bins: int = 41) -> dict[str, list[float]]:
    """Counts of all weights in `bins` equal bins over [-max|w|, max|w|] (odd: one bin centred on 0)."""
    if sum(w.numel() for w in weights) == 0:
        return {"edges": [], "counts": []}
    flat = torch.cat([w.detach().reshape(-1).float().cpu() for w in weights])
    bound = float(flat.abs().max()) or 1.0
    counts = torch.histc(flat, bins=bins, min=-bound, max=bound)
    edges = torch.linspace(-bound, bound, bins + 1)
    return {"edges": edges.tolist(), "counts": counts.tolist()}
