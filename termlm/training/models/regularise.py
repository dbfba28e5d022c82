"""AWD-LSTM's regularisation (Merity et al. 2017), each piece active in training only.

- embedding dropout: whole words dropped from the embedding matrix (every use of the word in
  the batch at once), the kept rows scaled up;
- locked (variational) dropout: one mask per sequence, shared by every time step;
- weight drop: DropConnect on the recurrent (hidden-to-hidden) matrices, one mask per step of
  training; the weights keep their names, so saved and exported models are unchanged;
- activation regularisation: ``ar * mean(out**2)`` on the dropped outputs and
  ``tar * mean((out[t] - out[t-1])**2)`` on the outputs before dropout.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


def embed_with_dropout(embedding: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """tokens [B, T] -> [B, T, E], with whole words dropped (probability p) in training."""
    if not training or p == 0.0:
        return embedding(tokens)
    weight = embedding.weight
    keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1.0 - p) / (1.0 - p)  # [V, 1]
    return F.embedding(tokens, weight * keep, embedding.padding_idx)


class LockedDropout(nn.Module):
    """x [B, T, C]: with ``locked``, one mask per sequence for every step; else plain dropout."""

    def __init__(self, p: float, locked: bool) -> None:
        super().__init__()
        self.p = p
        self.locked = locked

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not self.locked or x.dim() != 3:
            return F.dropout(x, self.p, True)
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * mask  # [B, T, C] * [B, 1, C]


def run_weight_dropped(rnn: nn.RNNBase, p: float, training: bool, *args: Any) -> Any:
    """``rnn(*args)``, its hidden-to-hidden matrices dropped (DropConnect) in training."""
    if not training or p == 0.0:
        return rnn(*args)
    dropped = {
        name: F.dropout(param, p, True)
        for name, param in rnn.named_parameters()
        if name.startswith("weight_hh")
    }
    return functional_call(rnn, dropped, args)


def activation_penalty(dropped: Tensor, raw: Tensor, ar: float, tar: float) -> Tensor | None:
    """AR on the dropped outputs, TAR on the raw ones ([B, T, H] each); None when both are 0."""
    penalty: Tensor | None = None
    if ar > 0.0:
        penalty = ar * dropped.pow(2).mean()
    if tar > 0.0 and raw.shape[1] > 1:
        slow = tar * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        penalty = slow if penalty is None else penalty + slow
    return penalty


def full_softmax_loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """logits [B, T, V] (the last T' positions used), targets [B, T'] -> (mean loss, correct)."""
    logits = logits[:, -targets.shape[1] :]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    correct = (logits.argmax(-1) == targets).sum()
    return loss, correct
