"""Recurrent models: stacked rnn/lstm/gru (stateful), and the bidirectional window model."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from termlm.config import ModelConfig
from termlm.training.models.base import LanguageModel, OutputHead, StateSpec, StateTuple

_CELLS: dict[str, Any] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def make_rnn(config: ModelConfig, input_size: int, bidirectional: bool = False) -> nn.RNNBase:
    """nn.RNN (tanh) / nn.LSTM / nn.GRU, batch first, dropout between layers."""
    cls = _CELLS[config.arch]
    rnn: nn.RNNBase = cls(
        input_size,
        config.hidden,
        num_layers=config.layers,
        dropout=config.dropout if config.layers > 1 else 0.0,
        batch_first=True,
        bidirectional=bidirectional,
    )
    return rnn


class RecurrentLM(LanguageModel):
    """Embedding -> dropout -> stacked RNN -> dropout -> (tied) output layer.

    State: ``h`` (and ``c`` for lstm), each ``[layers, batch, hidden]``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.drop = nn.Dropout(config.dropout)
        self.rnn = make_rnn(config, config.embed)
        self.head = OutputHead(config.hidden, config.vocab_size, self.embedding, config.tie)
        self.is_lstm = config.arch == "lstm"

    def state_spec(self) -> list[StateSpec]:
        shape: list[str | int] = [self.config.layers, "batch", self.config.hidden]
        names = ["h", "c"] if self.is_lstm else ["h"]
        return [StateSpec(name, tuple(shape), batch_axis=1) for name in names]

    def extras_names(self) -> list[str]:
        return ["hidden"]

    def forward_with_extras(
        self, tokens: Tensor, state: StateTuple | None = None
    ) -> tuple[Tensor, StateTuple, dict[str, Tensor]]:
        state = self._state_or_initial(tokens, state)
        x = self.drop(self.embedding(tokens))  # [B, T, E]
        new_state: StateTuple
        if self.is_lstm:
            out, (h, c) = self.rnn(x, (state[0], state[1]))  # out [B, T, H]; h, c [L, B, H]
            new_state = (h, c)
        else:
            out, h = self.rnn(x, state[0])
            new_state = (h,)
        logits = self.head(self.drop(out))  # [B, T, V]
        return logits, new_state, {"hidden": out}


class WindowLM(LanguageModel):
    """Bidirectional window model: reads the whole (pre-padded) window both ways.

    The last forward output and the first backward output (each direction's summary of the whole
    window) are concatenated and mapped to the logits of the token after the window: [B, 1, V].
    No state.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.drop = nn.Dropout(config.dropout)
        self.rnn = make_rnn(config, config.embed, bidirectional=True)
        self.head = OutputHead(2 * config.hidden, config.vocab_size, self.embedding, config.tie)

    def forward_with_extras(
        self, tokens: Tensor, state: StateTuple | None = None
    ) -> tuple[Tensor, StateTuple, dict[str, Tensor]]:
        hidden = self.config.hidden
        x = self.drop(self.embedding(tokens))  # [B, T, E]
        out, _ = self.rnn(x)  # [B, T, 2H]: forward half then backward half
        forward_last = out[:, -1, :hidden]  # [B, H]
        backward_first = out[:, 0, hidden:]  # [B, H]
        summary = self.drop(torch.cat([forward_last, backward_first], dim=-1))  # [B, 2H]
        logits = self.head(summary).unsqueeze(1)  # [B, 1, V]
        return logits, (), {}
