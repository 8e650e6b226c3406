"""A small convolutional network for images (8x8 digits, 28x28 digits and the like)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt
from torch import nn

from lightning_modules.config import Config
from lightning_modules.data.datasets import DataShape
from lightning_modules.models.layers import ACTIVATIONS, Activation, output_head
from lightning_modules.models.registry import MODELS, ModelEntry


class CNNConfig(Config):
    """One block per entry of `channels`: conv (same padding) -> optional batch norm ->
    activation -> 2x2 max pool (while the image is at least 2x2); then dropout and a linear head."""

    kind: Literal["cnn"] = "cnn"
    channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32], min_length=1)
    kernel_size: PositiveInt = 3
    activation: Activation = "relu"
    norm: Literal["none", "batch"] = "none"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


def build_cnn(cfg: CNNConfig, shape: DataShape) -> nn.Module:
    in_channels, height, width = shape.input
    layers: list[nn.Module] = []
    for out in cfg.channels:
        layers.append(nn.Conv2d(in_channels, out, cfg.kernel_size, padding="same"))
        if cfg.norm == "batch":
            layers.append(nn.BatchNorm2d(out))
        layers.append(ACTIVATIONS[cfg.activation]())
        if height >= 2 and width >= 2:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        in_channels = out
    layers.append(nn.Flatten())
    if cfg.dropout > 0:
        layers.append(nn.Dropout(cfg.dropout))
    layers.append(output_head(in_channels * height * width, shape))
    return nn.Sequential(*layers)


MODELS.register("cnn")(ModelEntry(config=CNNConfig, build=build_cnn, accepts=("image",)))
