"""A small Transformer encoder over (batch, time, channels) input."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import PositiveInt, model_validator
from torch import nn

from lightning_modules.data.datasets import DataShape
from lightning_modules.models.registry import MODELS, ModelEntry
from lightning_modules.models.sequence import SequenceConfig, SequenceHead


class TransformerConfig(SequenceConfig):
    """`hidden_size` is the model width, `layers` the encoder blocks; `ff_size` defaults to 4x width."""

    kind: Literal["transformer"] = "transformer"
    heads: PositiveInt = 4
    ff_size: PositiveInt | None = None

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerConfig:
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by heads ({self.heads})")
        return self


def sinusoidal_positions(steps: int, width: int) -> torch.Tensor:
    """The fixed position code of Vaswani et al. (2017), (steps, width)."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    rates = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    code = torch.zeros(steps, width)
    code[:, 0::2] = torch.sin(position * rates)
    code[:, 1::2] = torch.cos(position * rates[: width // 2])
    return code


class TransformerNet(nn.Module):
    """Input projection + position code, pre-norm encoder blocks, a `SequenceHead`.

    Attention is not masked: every step sees the whole sequence, which suits classifying a
    sequence or labelling each step of a sequence that is given whole.
    """

    def __init__(self, cfg: TransformerConfig, shape: DataShape) -> None:
        super().__init__()
        width = cfg.hidden_size
        self.embed = nn.Linear(shape.input[-1], width)
        self.register_buffer("positions", sinusoidal_positions(shape.input[0], width), persistent=False)
        block = nn.TransformerEncoderLayer(
            d_model=width,
            nhead=cfg.heads,
            dim_feedforward=cfg.ff_size or 4 * width,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors only speed up padded batches, and need post-norm blocks.
        self.encoder = nn.TransformerEncoder(block, cfg.layers, norm=nn.LayerNorm(width), enable_nested_tensor=False)
        self.head = SequenceHead(width, shape, cfg.pool, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        positions = (
            self.positions if steps == len(self.positions) else sinusoidal_positions(steps, self.positions.shape[-1])
        )
        states = self.encoder(self.embed(x) + positions.to(x.device))
        return self.head(states, states[:, -1])


def build_transformer(cfg: TransformerConfig, shape: DataShape) -> nn.Module:
    return TransformerNet(cfg, shape)


MODELS.register("transformer")(ModelEntry(config=TransformerConfig, build=build_transformer, accepts=("sequence",)))
