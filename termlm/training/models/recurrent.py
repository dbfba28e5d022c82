"""Recurrent models: stacked rnn/lstm/gru (stateful), and the bidirectional window model."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from termlm.config import ModelConfig
from termlm.training.models.adaptive import AdaptiveHead, auto_cutoffs
from termlm.training.models.base import LanguageModel, OutputHead, StateSpec, StateTuple
from termlm.training.models.regularise import (
    LockedDropout,
    activation_penalty,
    embed_with_dropout,
    full_softmax_loss,
    run_weight_dropped,
)

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

    The output layer is a full softmax, or an adaptive one (``softmax="adaptive"``), which
    returns log-probabilities. AWD-LSTM's regularisation (training only) is in ``regularise``.
    State: ``h`` (and ``c`` for lstm), each ``[layers, batch, hidden]``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.drop = LockedDropout(config.dropout, config.locked_dropout)
        self.rnn = make_rnn(config, config.embed)
        self.head: nn.Module
        if config.softmax == "adaptive":
            cutoffs = config.cutoffs or auto_cutoffs(config.vocab_size)
            self.head = AdaptiveHead(
                config.hidden, config.vocab_size, self.embedding, config.tie, cutoffs
            )
        else:
            self.head = OutputHead(config.hidden, config.vocab_size, self.embedding, config.tie)
        self.is_lstm = config.arch == "lstm"

    def state_spec(self) -> list[StateSpec]:
        shape: list[str | int] = [self.config.layers, "batch", self.config.hidden]
        names = ["h", "c"] if self.is_lstm else ["h"]
        return [StateSpec(name, tuple(shape), batch_axis=1) for name in names]

    def extras_names(self) -> list[str]:
        return ["hidden"]

    def _features(self, tokens: Tensor, state: StateTuple) -> tuple[Tensor, StateTuple]:
        """tokens [B, T] -> RNN outputs [B, T, H] (before the output dropout), new state."""
        config = self.config
        x = self.drop(
            embed_with_dropout(self.embedding, tokens, config.embed_dropout, self.training)
        )
        if self.is_lstm:
            out, (h, c) = run_weight_dropped(
                self.rnn, config.weight_drop, self.training, x, (state[0], state[1])
            )  # out [B, T, H]; h, c [L, B, H]
            return out, (h, c)
        out, h = run_weight_dropped(self.rnn, config.weight_drop, self.training, x, state[0])
        return out, (h,)

    def forward_with_extras(
        self, tokens: Tensor, state: StateTuple | None = None
    ) -> tuple[Tensor, StateTuple, dict[str, Tensor]]:
        state = self._state_or_initial(tokens, state)
        out, new_state = self._features(tokens, state)
        logits = self.head(self.drop(out))  # [B, T, V]
        return logits, new_state, {"hidden": out}

    def loss(self, tokens: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        out, _ = self._features(tokens, self.initial_state(tokens.shape[0], tokens.device))
        dropped = self.drop(out)  # [B, T, H]
        if isinstance(self.head, AdaptiveHead):
            used = dropped[:, -targets.shape[1] :]
            loss, correct = self.head.loss(used.reshape(-1, used.shape[-1]), targets.reshape(-1))
        else:
            loss, correct = full_softmax_loss(self.head(dropped), targets)
        if self.training:
            penalty = activation_penalty(dropped, out, self.config.ar, self.config.tar)
            if penalty is not None:
                loss = loss + penalty
        return loss, correct


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
