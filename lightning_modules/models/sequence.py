"""What the sequence models share: their common settings and their output head."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn

from lightning_modules.config import Config
from lightning_modules.data.datasets import DataShape


class SequenceConfig(Config):
    """Settings every sequence model has, so that `model.kind` can be searched across them.

    `pool` picks the sequence-to-one summary: the final state (`last`) or the mean over time
    steps (`mean`). Data with a target per time step always gets the sequence-to-sequence head.
    """

    kind: str
    hidden_size: PositiveInt = 64
    layers: PositiveInt = 1
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="between layers and before the head")
    pool: Literal["last", "mean"] = "last"


class SequenceHead(nn.Module):
    """Linear readout of per-step states (batch, time, features): one output per time step
    (sequence-to-sequence) or one per sequence from the last state or the mean over time."""

    def __init__(self, features: int, shape: DataShape, pool: str, dropout: float) -> None:
        super().__init__()
        self.per_step, self.pool = shape.per_step, pool
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(features, shape.num_outputs)

    def forward(self, states: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        if self.per_step:
            features = states
        elif self.pool == "mean":
            features = states.mean(dim=1)
        else:
            features = last
        return self.linear(self.dropout(features))
