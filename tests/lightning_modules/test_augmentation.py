"""Augmentations: what each transform does to a batch, and that evaluation never sees it."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.regularizers import REGULARIZERS, RegularizationConfig, build_regularizers
from lightning_modules.regularizers.augmentation import (
    flip_images,
    scale_sequences,
    shift_images,
    warp_positions,
    warp_sequences,
)


def images(n: int = 6) -> torch.Tensor:
    return torch.arange(n * 2 * 5 * 5, dtype=torch.float32).reshape(n, 2, 5, 5)


def test_flip_mirrors_with_its_probability() -> None:
    x = images()
    assert torch.equal(flip_images(x, 1.0), x.flip(-1))
    assert torch.equal(flip_images(x, 0.0), x)
    torch.manual_seed(0)
    flipped = flip_images(images(2000), 0.3)
    share = (flipped != images(2000)).flatten(1).any(1).float().mean()
    assert float(share) == pytest.approx(0.3, abs=0.04)


def test_shift_moves_each_image_within_bounds_and_replicates_edges() -> None:
    torch.manual_seed(0)
    x = images(50)
    out = shift_images(x, 1)
    assert out.shape == x.shape
    for i in range(len(x)):
        # Some shift in [-1, 1]^2 of the edge-padded image reproduces the output.
        padded = torch.nn.functional.pad(x[i : i + 1], (1, 1, 1, 1), mode="replicate")[0]
        assert any(torch.equal(out[i], padded[:, dy : dy + 5, dx : dx + 5]) for dy in range(3) for dx in range(3))
    assert not torch.equal(out, x)  # 50 images, some moved
    assert torch.equal(shift_images(x, 0), x)


def test_scale_multiplies_whole_channels() -> None:
    torch.manual_seed(0)
    x = torch.ones(4, 10, 3)
    out = scale_sequences(x, 0.2)
    assert torch.allclose(out, out[:, :1, :].expand_as(out))  # constant along time
    assert not torch.allclose(out, x)


def test_time_warp_is_a_smooth_monotone_resampling() -> None:
    torch.manual_seed(0)
    positions = warp_positions(8, 40, 0.3)
    assert torch.allclose(positions[:, 0], torch.zeros(8)) and torch.allclose(positions[:, -1], torch.full((8,), 39.0))
    assert bool((positions.diff(dim=1) > 0).all())
    ramp = torch.arange(40, dtype=torch.float32)[None, :, None].repeat(8, 1, 2)
    torch.manual_seed(0)  # the same draw: a ramp reads its positions back
    assert torch.allclose(warp_sequences(ramp, 0.3)[..., 0], positions, atol=1e-4)
    assert torch.allclose(warp_sequences(ramp, 0.0), ramp, atol=1e-4)


def test_augmentations_change_training_batches_only() -> None:
    cfg = RegularizationConfig(shift=1, flip=0.5)
    regularizers = build_regularizers(cfg, "classification")
    assert len(regularizers.batch_hooks) == 2
    x, y = images(), torch.zeros(6, dtype=torch.long)
    torch.manual_seed(0)
    augmented, criterion = regularizers.batch(x, y, torch.nn.functional.cross_entropy)
    assert augmented.shape == x.shape and not torch.equal(augmented, x)
    assert criterion is torch.nn.functional.cross_entropy  # targets and loss unchanged
    assert REGULARIZERS.get("flip").kinds == ("image",) and REGULARIZERS.get("time_warp").kinds == ("sequence",)


def test_time_warp_refuses_per_step_targets() -> None:
    regularizers = build_regularizers(RegularizationConfig(time_warp=0.2), "classification")
    with pytest.raises(ValueError, match="per-step targets"):
        regularizers.batch(torch.zeros(2, 10, 3), torch.zeros(2, 10, dtype=torch.long), torch.nn.functional.cross_entropy)
