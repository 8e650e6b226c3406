"""Multi-layer perceptron."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt
from torch import nn

from lightning_modules.config import Config
from lightning_modules.models.registry import MODELS, ModelEntry

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


class MLPConfig(Config):
    """Hidden widths in order; dropout after every hidden activation."""

    kind: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field(default_factory=lambda: [128])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    activation: Literal["relu", "gelu", "tanh", "sigmoid"] = "relu"


def build_mlp(cfg: MLPConfig, num_features: int, num_outputs: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = num_features
    for out in cfg.hidden:
        layers += [nn.Linear(width, out), ACTIVATIONS[cfg.activation]()]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = out
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)


MODELS.register("mlp")(ModelEntry(config=MLPConfig, build=build_mlp))
