"""The interface every PyTorch language model honours: tokens and state in, logits and state out."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from termlm.config import ModelConfig
from termlm.modelfile import StateSpec
from termlm.training.models.regularise import full_softmax_loss

StateTuple = tuple[Tensor, ...]


class LanguageModel(nn.Module):
    """Base class: one stepping interface for every architecture.

    ``forward(tokens[B, T], state) -> (logits[B, T, V], new_state)``; a window model (not
    stateful) returns logits ``[B, 1, V]`` for the token after the window and an empty state.
    """

    config: ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    # --- description -------------------------------------------------------------------------
    def state_spec(self) -> list[StateSpec]:
        return []

    def extras_names(self) -> list[str]:
        return []

    @property
    def stateful(self) -> bool:
        return self.config.stateful

    def initial_state(self, batch: int, device: torch.device | None = None) -> StateTuple:
        """Zeros for fixed-size states, an empty (time length 0) memory for growing ones."""
        device = device if device is not None else self._device()
        out = []
        for spec in self.state_spec():
            shape = [
                batch if dim == "batch" else 0 if dim == "time" else int(dim) for dim in spec.shape
            ]
            out.append(torch.zeros(shape, device=device))
        return tuple(out)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _state_or_initial(self, tokens: Tensor, state: StateTuple | None) -> StateTuple:
        if state is None:
            return self.initial_state(tokens.shape[0], tokens.device)
        return tuple(state)

    # --- computation -------------------------------------------------------------------------
    def forward_with_extras(
        self, tokens: Tensor, state: StateTuple | None = None
    ) -> tuple[Tensor, StateTuple, dict[str, Tensor]]:
        raise NotImplementedError

    def forward(
        self, tokens: Tensor, state: StateTuple | None = None, targets: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        """``(logits, new_state)``; with ``targets`` ``[B, T']`` (training), ``loss(tokens,
        targets)`` instead, so a wrapper such as DistributedDataParallel sees one forward."""
        if targets is not None:
            return self.loss(tokens, targets)
        logits, new_state, _ = self.forward_with_extras(tokens, state)
        return logits, new_state

    def loss(self, tokens: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Mean training loss on ``targets`` (the last T' positions of each row, from the zero
        state), and the count of correct argmax guesses."""
        logits, _, _ = self.forward_with_extras(tokens)
        return full_softmax_loss(logits, targets)

    def num_parameters(self) -> int:
        """Distinct trainable parameters (a tied weight counts once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class OutputHead(nn.Module):
    """Features -> vocabulary logits, optionally tied to the input embedding.

    With ``tie`` the output matrix is the embedding's weight; when the feature size differs from
    the embedding size a Linear(features, embed) projection comes first.
    """

    def __init__(self, features: int, vocab: int, embedding: nn.Embedding, tie: bool) -> None:
        super().__init__()
        self.proj: nn.Module
        if tie:
            embed = embedding.embedding_dim
            self.proj = nn.Linear(features, embed) if features != embed else nn.Identity()
            self.decoder = nn.Linear(embed, vocab)
            self.decoder.weight = embedding.weight  # shared Parameter
        else:
            self.proj = nn.Identity()
            self.decoder = nn.Linear(features, vocab)

    def forward(self, x: Tensor) -> Tensor:
        # x: [..., features] -> [..., vocab]
        return self.decoder(self.proj(x))


def causal_mask(past: int, time: int, device: torch.device) -> Tensor:
    """[T, past + T] bool: query t (absolute position past + t) may see memory j <= past + t."""
    query_pos = torch.arange(time, device=device).unsqueeze(1) + past  # [T, 1]
    key_pos = torch.arange(past + time, device=device).unsqueeze(0)  # [1, past + T]
    return key_pos <= query_pos
