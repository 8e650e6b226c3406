"""Data augmentation: random label-preserving transforms of each training mini-batch, drawn
fresh every step; validation and test see the data as it is.

Images (n, channels, height, width):
- `flip`: mirror left-right with this probability (label-preserving for natural images, not
  for digits: a mirrored 2 is no 2, which the augmentation study shows);
- `shift`: move by up to this many pixels in each direction, edges replicated (a random crop of
  the padded image).

Sequences (n, time, channels):
- `scale`: multiply each sample's channels by 1 + scale * N(0, 1) (Um et al., 2017);
- `time_warp`: resample along a smooth random time axis whose local speed is
  1 + time_warp * N(0, 1) at four knots, linearly interpolated (Um et al., 2017).

Jitter (additive noise) is `input_noise`; mixup is `mixup_alpha`.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch.nn import functional as F

from lightning_modules.regularizers.base import REGULARIZERS, Criterion, Regularizer, RegularizerEntry

WARP_KNOTS = 4


def flip_images(x: torch.Tensor, probability: float) -> torch.Tensor:
    mask = torch.rand(len(x), device=x.device) < probability
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def shift_images(x: torch.Tensor, pixels: int) -> torch.Tensor:
    n, channels, height, width = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels), mode="replicate")
    dy = torch.randint(0, 2 * pixels + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pixels + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(height, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(width, device=x.device))[:, None, None, :]
    samples = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(channels, device=x.device)[None, :, None, None]
    return padded[samples, chans, rows, cols]


def scale_sequences(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return x * (1.0 + sigma * torch.randn(len(x), 1, x.shape[-1], device=x.device))


def warp_positions(n: int, steps: int, sigma: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, steps) increasing sample positions from 0 to steps - 1 along smooth random time axes."""
    speed = (1.0 + sigma * torch.randn(n, 1, WARP_KNOTS, device=device)).clamp_(min=0.1)
    speed = F.interpolate(speed, size=steps, mode="linear", align_corners=True)[:, 0]
    position = torch.cumsum(speed, dim=1) - speed[:, :1]
    return position / position[:, -1:].clamp(min=1e-12) * (steps - 1)


def warp_sequences(x: torch.Tensor, sigma: float) -> torch.Tensor:
    n, steps, _ = x.shape
    position = warp_positions(n, steps, sigma, x.device)
    low = position.floor().long().clamp_(max=steps - 1)
    high = (low + 1).clamp_(max=steps - 1)
    weight = (position - low)[..., None]
    take = lambda index: torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))  # noqa: E731
    return (1.0 - weight) * take(low) + weight * take(high)


class Augmentation(Regularizer):
    """One transform of the training inputs, with its strength; targets are unchanged."""

    def __init__(self, transform, strength: float) -> None:  # type: ignore[no-untyped-def]
        self.transform, self.strength = transform, strength

    def batch(self, x: torch.Tensor, y: torch.Tensor, criterion: Criterion) -> tuple[torch.Tensor, Criterion]:
        if self.transform is warp_sequences and y.dim() > 1:
            raise ValueError("time_warp moves inputs along time; per-step targets would no longer line up")
        return self.transform(x, self.strength), criterion


def _entry(transform, annotation: type, field, kinds: tuple[str, ...], order: int) -> RegularizerEntry:  # type: ignore[no-untyped-def]
    def build(value: float, task: str) -> Regularizer | None:
        return Augmentation(transform, value) if value > 0 else None

    return RegularizerEntry(annotation, field, build, order=order, kinds=kinds)


# Before mixup (20) and input noise (30): augment the sample, then mix and jitter it.
REGULARIZERS.register("flip")(_entry(flip_images, float, Field(0.0, ge=0.0, le=1.0), ("image",), 12))
REGULARIZERS.register("shift")(_entry(shift_images, int, Field(0, ge=0, le=64), ("image",), 13))
REGULARIZERS.register("scale")(_entry(scale_sequences, float, Field(0.0, ge=0.0, le=10.0), ("sequence",), 14))
REGULARIZERS.register("time_warp")(_entry(warp_sequences, float, Field(0.0, ge=0.0, le=10.0), ("sequence",), 15))
