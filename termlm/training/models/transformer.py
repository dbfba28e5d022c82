"""A small pre-LayerNorm causal Transformer decoder with a key/value cache."""

from __future__ import annotations

import math

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


class SelfAttention(nn.Module):
    """Multi-head causal self-attention over the cache and the new tokens, written by hand."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # x [B, T, C]; past_k, past_v [B, nh, P, hd]
        batch, time, channels = x.shape
        q, k, v = self.qkv(x).split(channels, dim=2)  # each [B, T, C]
        q = q.view(batch, time, self.heads, self.head_dim).transpose(1, 2)  # [B, nh, T, hd]
        k = k.view(batch, time, self.heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, time, self.heads, self.head_dim).transpose(1, 2)
        k = torch.cat([past_k, k], dim=2)  # [B, nh, P + T, hd]
        v = torch.cat([past_v, v], dim=2)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))  # [B, nh, T, P+T]
        allowed = causal_mask(past_k.shape[2], time, x.device)  # [T, P + T]
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # [B, nh, T, P + T]
        y = self.drop(weights) @ v  # [B, nh, T, hd]
        y = y.transpose(1, 2).reshape(batch, time, channels)  # [B, T, C]
        return self.drop(self.proj(y)), k, v, weights


class Block(nn.Module):
    """LN -> attention -> residual, LN -> MLP (4x, GELU) -> residual."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads, dropout)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, 4 * hidden),
            nn.GELU(),
            nn.Linear(4 * hidden, hidden),
            nn.Dropout(dropout),
        )

    def forward(
        self, x: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        attended, k, v, weights = self.attn(self.ln1(x), past_k, past_v)
        x = x + attended
        x = x + self.mlp(self.ln2(x))
        return x, k, v, weights


class TransformerLM(LanguageModel):
    """Token + learned position embeddings -> blocks -> LN -> (tied) output layer.

    State: ``k``, ``v`` ``[layers, batch, heads, past, head_dim]``. Positions start at the
    cache's length; past + T must stay within ``context`` (positions beyond are clamped to the
    last one, the runtime re-prefills before that happens).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        hidden = config.hidden
        self.head_dim = hidden // config.heads
        self.embedding = nn.Embedding(config.vocab_size, hidden)
        self.position = nn.Embedding(config.context, hidden)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(hidden, config.heads, config.dropout) for _ in range(config.layers)
        )
        self.ln_f = nn.LayerNorm(hidden)
        self.head = OutputHead(hidden, config.vocab_size, self.embedding, config.tie)
        self.apply(_init_weights)
        for name, param in self.named_parameters():  # scaled residual projections (GPT-2)
            if name.endswith("attn.proj.weight"):
                nn.init.normal_(param, 0.0, 0.02 / math.sqrt(2 * config.layers))

    def state_spec(self) -> list[StateSpec]:
        c = self.config
        shape: list[str | int] = [c.layers, "batch", c.heads, "time", self.head_dim]
        return [
            StateSpec("k", tuple(shape), batch_axis=1, time_axis=3),
            StateSpec("v", tuple(shape), batch_axis=1, time_axis=3),
        ]

    def extras_names(self) -> list[str]:
        return ["attention"]

    def forward_with_extras(
        self, tokens: Tensor, state: StateTuple | None = None
    ) -> tuple[Tensor, StateTuple, dict[str, Tensor]]:
        past_k, past_v = self._state_or_initial(tokens, state)  # [L, B, nh, P, hd]
        time = tokens.shape[1]
        positions = torch.arange(time, device=tokens.device) + past_k.shape[3]  # [T]
        positions = positions.clamp(max=self.config.context - 1)
        x = self.drop(self.embedding(tokens) + self.position(positions))  # [B, T, C]
        new_k, new_v = [], []
        weights = torch.empty(0)
        for layer, block in enumerate(self.blocks):
            x, k, v, weights = block(x, past_k[layer], past_v[layer])
            new_k.append(k)
            new_v.append(v)
        logits = self.head(self.ln_f(x))  # [B, T, V]
        state_out = (torch.stack(new_k), torch.stack(new_v))  # [L, B, nh, P + T, hd]
        return logits, state_out, {"attention": weights.mean(dim=1)}  # [B, T, P + T]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
