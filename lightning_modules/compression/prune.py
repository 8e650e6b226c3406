"""Pruning: magnitude masks (per layer or global, kept through fine-tuning by
`torch.nn.utils.prune`), structured removal of whole hidden neurons that physically shrinks a
dense network, and the lottery ticket's rewinding of the surviving weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from lightning_modules.compression.quantize import weight_layers


def per_round(amount: float, rounds: int) -> float:
    """The fraction of the remaining weights each of `rounds` rounds removes so that `amount`
    of them are gone after the last (a geometric schedule, as iterative pruning uses)."""
    return 1.0 - (1.0 - amount) ** (1.0 / rounds)


def magnitude_prune(net: nn.Module, amount: float, scope: str) -> None:
    """Mask the smallest-magnitude `amount` of the still-unmasked weights: in each layer alone
    (`layer`) or ranked across all layers (`global`). Masks accumulate over calls and hold
    through training: the layer computes with `weight_orig * weight_mask`."""
    layers = [(layer, "weight") for layer in weight_layers(net)]
    if scope == "global":
        prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for layer, name in layers:
            prune.l1_unstructured(layer, name, amount=amount)


def masks(net: nn.Module) -> dict[str, torch.Tensor]:
    """Each pruned layer's current mask, by module name."""
    return {name: m.weight_mask.detach().clone() for name, m in net.named_modules() if hasattr(m, "weight_mask")}


def make_permanent(net: nn.Module) -> None:
    """Fold the masks into the weights (pruned entries become stored zeros) and drop them."""
    for layer in weight_layers(net):
        if prune.is_pruned(layer) and hasattr(layer, "weight_mask"):
            prune.remove(layer, "weight")


@torch.no_grad()
def rewind(net: nn.Module, initial: nn.Module) -> None:
    """Reset every weight and bias to its value in `initial` (same architecture), keeping the
    masks: the lottery ticket's rewinding (or, with a freshly initialized `initial`, its
    random-reinitialization control)."""
    source = dict(initial.named_parameters())
    for name, param in net.named_parameters():
        target = source.get(name.removesuffix("_orig"))
        if target is None or target.shape != param.shape:
            raise ValueError(f"cannot rewind {name!r}: the initial network has no such parameter of that shape")
        param.copy_(target)


@torch.no_grad()
def shrink_hidden(net: nn.Sequential, amount: float) -> list[int]:
    """Remove the `amount` of each hidden layer's neurons with the smallest incoming weight norm
    (L2 over the row and its bias), cutting the matching rows out of that linear layer (and of a
    batch norm after it) and the matching columns out of the next linear layer. The network
    gets physically smaller; its output for the kept neurons is unchanged. Returns the new
    hidden widths."""
    linears = [i for i, m in enumerate(net) if isinstance(m, nn.Linear)]
    widths = []
    for here, following in zip(linears, linears[1:]):
        layer: nn.Linear = net[here]
        norms = layer.weight.norm(dim=1) ** 2
        if layer.bias is not None:
            norms = norms + layer.bias**2
        keep_count = max(1, round(layer.out_features * (1.0 - amount)))
        keep = torch.sort(torch.topk(norms, keep_count).indices).values
        net[here] = _rows(layer, keep)
        for i in range(here + 1, following):
            if isinstance(net[i], nn.BatchNorm1d):
                net[i] = _batch_norm(net[i], keep)
            elif isinstance(net[i], nn.LayerNorm):
                raise ValueError("structured pruning cannot shrink a layer-normalized layer (its statistics change)")
        net[following] = _columns(net[following], keep)
        widths.append(keep_count)
    return widths


def can_shrink(net: nn.Module) -> bool:
    """Whether `shrink_hidden` applies: a sequential network of linear layers (an MLP) without
    layer norm, with at least one hidden layer."""
    if not isinstance(net, nn.Sequential):
        return False
    kinds = [type(m) for m in net]
    allowed = (nn.Linear, nn.Flatten, nn.BatchNorm1d, nn.Dropout, nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU,
               nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Identity)
    return kinds.count(nn.Linear) >= 2 and all(issubclass(k, allowed) for k in kinds)


def _rows(layer: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    new = nn.Linear(layer.in_features, len(keep), bias=layer.bias is not None)
    new.weight.data.copy_(layer.weight.data[keep])
    if layer.bias is not None:
        new.bias.data.copy_(layer.bias.data[keep])
    return new


def _columns(layer: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    new = nn.Linear(len(keep), layer.out_features, bias=layer.bias is not None)
    new.weight.data.copy_(layer.weight.data[:, keep])
    if layer.bias is not None:
        new.bias.data.copy_(layer.bias.data)
    return new


def _batch_norm(norm: nn.BatchNorm1d, keep: torch.Tensor) -> nn.BatchNorm1d:
    new = nn.BatchNorm1d(len(keep), eps=norm.eps, momentum=norm.momentum, affine=norm.affine)
    if norm.affine:
        new.weight.data.copy_(norm.weight.data[keep])
        new.bias.data.copy_(norm.bias.data[keep])
    new.running_mean.copy_(norm.running_mean[keep])
    new.running_var.copy_(norm.running_var[keep])
    return new


def parameter_counts(net: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters), masks applied."""
    total = nonzero = 0
    for module in net.modules():
        for name, _ in module.named_parameters(recurse=False):
            value = getattr(module, name.removesuffix("_orig"))
            total += value.numel()
            nonzero += int((value != 0).sum())
    return total, nonzero
