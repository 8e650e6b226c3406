"""Multi-layer perceptron over the flattened input."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt
from torch import nn

from lightning_modules.config import Config
from lightning_modules.data.datasets import DataShape
from lightning_modules.models.layers import ACTIVATIONS, Activation, output_head
from lightning_modules.models.registry import MODELS, ModelEntry

NORMS: dict[str, type[nn.Module] | None] = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


class MLPConfig(Config):
    """Hidden widths in order (the list's length is the depth); each hidden layer is
    linear -> optional norm -> activation -> dropout."""

    kind: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field(default_factory=lambda: [128])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    activation: Activation = "relu"
    norm: Literal["none", "batch", "layer"] = "none"


def build_mlp(cfg: MLPConfig, shape: DataShape) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = shape.num_features
    norm = NORMS[cfg.norm]
    for out in cfg.hidden:
        layers.append(nn.Linear(width, out))
        if norm is not None:
            layers.append(norm(out))
        layers.append(ACTIVATIONS[cfg.activation]())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = out
    layers.append(output_head(width, shape))
    return nn.Sequential(*layers)


MODELS.register("mlp")(ModelEntry(config=MLPConfig, build=build_mlp))
