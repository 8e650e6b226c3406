"""Recurrent networks: vanilla (Elman) RNN, LSTM and GRU over (batch, time, channels) input."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lightning_modules.data.datasets import DataShape
from lightning_modules.models.registry import MODELS, ModelEntry
from lightning_modules.models.sequence import SequenceConfig, SequenceHead

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentConfig(SequenceConfig):
    """The three recurrent kinds share every setting, so a study can search `model.kind` over them."""

    bidirectional: bool = False


class RNNConfig(RecurrentConfig):
    kind: Literal["rnn"] = "rnn"


class LSTMConfig(RecurrentConfig):
    kind: Literal["lstm"] = "lstm"


class GRUConfig(RecurrentConfig):
    kind: Literal["gru"] = "gru"


class RecurrentNet(nn.Module):
    """A stack of recurrent layers and a `SequenceHead`; `last` is the final state of the top
    layer (both directions' final states when bidirectional)."""

    def __init__(self, cfg: RecurrentConfig, shape: DataShape) -> None:
        super().__init__()
        self.directions = 2 if cfg.bidirectional else 1
        self.rnn = CELLS[cfg.kind](
            input_size=shape.input[-1],
            hidden_size=cfg.hidden_size,
            num_layers=cfg.layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,  # torch applies it between layers only
        )
        if isinstance(self.rnn, nn.LSTM):
            _open_forget_gates(self.rnn, cfg.hidden_size)
        self.head = SequenceHead(cfg.hidden_size * self.directions, shape, cfg.pool, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, hidden = self.rnn(x)
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # an LSTM returns (h, c)
        last = torch.cat(list(h[-self.directions :]), dim=-1)
        return self.head(states, last)


def _open_forget_gates(lstm: nn.LSTM, hidden: int) -> None:
    """Forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): the cell starts out
    remembering, which lets gradients reach early time steps from the first updates."""
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_"):  # gates are stacked (input, forget, cell, output)
                bias[hidden : 2 * hidden] = 1.0 if name.startswith("bias_ih") else 0.0


def build_recurrent(cfg: RecurrentConfig, shape: DataShape) -> nn.Module:
    return RecurrentNet(cfg, shape)


for _config in (RNNConfig, LSTMConfig, GRUConfig):
    MODELS.register(_config.model_fields["kind"].default)(
        ModelEntry(config=_config, build=build_recurrent, accepts=("sequence",))
    )
