"""Small pieces shared by the networks: activations, normalization, the output head."""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

from lightning_modules.data.datasets import DataShape

Activation = Literal["relu", "gelu", "tanh", "sigmoid"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def output_head(in_features: int, shape: DataShape) -> nn.Module:
    """A linear map from flat features to one sample's outputs; per-step targets get
    (time, outputs) by reshaping, so a flat network can still answer every step."""
    linear = nn.Linear(in_features, math.prod(shape.output))
    return nn.Sequential(linear, nn.Unflatten(-1, shape.output)) if shape.per_step else linear
