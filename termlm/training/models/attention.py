"""LSTM with additive (Bahdanau) attention over its own past top-layer hidden states."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from termlm.config import ModelConfig
from termlm.training.models.base import (
    LanguageModel,
    OutputHead,
    StateSpec,
    StateTuple,
    causal_mask,
)


class AttentionLM(LanguageModel):
    """Embedding -> LSTM -> additive attention over the memory of past top outputs -> vocab.

    At step t: ``score_j = v^T tanh(K_j + W_q h_t)`` over memory j (the past and the current
    step), ``K_j = W_k h_j`` stored already projected; ``context_t = sum_j a_tj h_j``;
    ``out_t = W_o tanh(W_c [h_t; context_t])``. The memory holds no positions, so trimming its
    oldest entries stays valid.

    State: ``h``, ``c`` ``[layers, batch, hidden]``; ``keys`` ``[batch, mem, attn]``;
    ``values`` ``[batch, mem, hidden]``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        hidden = config.hidden
        self.attn = config.attn_size or hidden
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.drop = nn.Dropout(config.dropout)
        self.rnn = nn.LSTM(
            config.embed,
            hidden,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.key = nn.Linear(hidden, self.attn, bias=False)  # W_k
        self.query = nn.Linear(hidden, self.attn)  # W_q
        self.score = nn.Linear(self.attn, 1, bias=False)  # v
        self.combine = nn.Linear(2 * hidden, hidden)  # W_c
        self.head = OutputHead(hidden, config.vocab_size, self.embedding, config.tie)

    def state_spec(self) -> list[StateSpec]:
        layers, hidden = self.config.layers, self.config.hidden
        return [
            StateSpec("h", (layers, "batch", hidden), batch_axis=1),
            StateSpec("c", (layers, "batch", hidden), batch_axis=1),
            StateSpec("keys", ("batch", "time", self.attn), batch_axis=0, time_axis=1),
            StateSpec("values", ("batch", "time", hidden), batch_axis=0, time_axis=1),
        ]

    def extras_names(self) -> list[str]:
        return ["attention", "hidden"]

    def forward_with_extras(
        self, tokens: Tensor, state: StateTuple | None = None
    ) -> tuple[Tensor, StateTuple, dict[str, Tensor]]:
        h0, c0, past_keys, past_values = self._state_or_initial(tokens, state)
        x = self.drop(self.embedding(tokens))  # [B, T, E]
        out, (h, c) = self.rnn(x, (h0, c0))  # out [B, T, H]
        keys = torch.cat([past_keys, self.key(out)], dim=1)  # [B, M + T, A]
        values = torch.cat([past_values, out], dim=1)  # [B, M + T, H]
        query = self.query(out)  # [B, T, A]
        energy = torch.tanh(keys.unsqueeze(1) + query.unsqueeze(2))  # [B, T, M + T, A]
        scores = self.score(energy).squeeze(-1)  # [B, T, M + T]
        time = tokens.shape[1]
        past = past_keys.shape[1]
        allowed = causal_mask(past, time, tokens.device)  # [T, M + T]
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # [B, T, M + T]
        context = torch.bmm(weights, values)  # [B, T, H]
        combined = torch.tanh(self.combine(torch.cat([out, context], dim=-1)))  # [B, T, H]
        logits = self.head(self.drop(combined))  # [B, T, V]
        return logits, (h, c, keys, values), {"attention": weights, "hidden": out}
