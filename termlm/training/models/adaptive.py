"""An adaptive (clustered) softmax for large word vocabularies (Grave et al. 2017).

The vocabulary, in frequency order, is cut into a head (the frequent words plus one entry per
tail cluster) and tail clusters of rarer words: p(word) = p(cluster | h) * p(word | cluster, h).
Training reads the head for every token and a tail only for the tokens whose target lies in it,
so most of the output layer's work is skipped. ``forward`` returns FULL next-word
log-probabilities ``[..., V]`` written with plain ops (``AdaptiveLogSoftmaxWithLoss.log_prob``
semantics), so the exported graph, the decoding plugins and evaluation see an ordinary model.

Tied (``tie``): every word's output vector is its input embedding row; the tails read the same
features as the head, so the model has the full softmax's weights plus one vector per cluster.
Untied: the head owns its word vectors and tail ``i`` projects the features down to
``features // 4**(i+1)`` before its own, smaller word matrix (Grave et al.'s reduction).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from termlm.training.defaults import auto_cutoffs

__all__ = ["AdaptiveHead", "auto_cutoffs"]

TAIL_DIVISOR = 4  # untied tails: each cluster's projection is this many times narrower


class AdaptiveHead(nn.Module):
    """Features ``[..., F]`` -> full log-probabilities ``[..., V]``; ``loss`` for training."""

    def __init__(
        self,
        features: int,
        vocab: int,
        embedding: nn.Embedding,
        tie: bool,
        cutoffs: list[int],
    ) -> None:
        super().__init__()
        if not cutoffs or cutoffs[-1] >= vocab:
            raise ValueError(
                f"adaptive softmax cutoffs {cutoffs} do not fit a vocabulary of {vocab}"
            )
        self.bounds = [0, *cutoffs, vocab]  # cluster k spans [bounds[k], bounds[k + 1])
        self.tied = tie
        self.embedding = [embedding]  # a list: the module is the parent's, not registered twice
        n_tails = len(cutoffs)
        head_words = cutoffs[0]
        self.proj: nn.Module
        if tie:
            width = embedding.embedding_dim
            self.proj = nn.Linear(features, width) if features != width else nn.Identity()
            self.head_words = None
        else:
            width = features
            self.proj = nn.Identity()
            self.head_words = nn.Parameter(torch.empty(head_words, width))
            nn.init.normal_(self.head_words, std=width**-0.5)
        self.clusters = nn.Parameter(torch.zeros(n_tails, width))  # one head entry per tail
        self.head_bias = nn.Parameter(torch.zeros(head_words + n_tails))
        self.tail_proj = nn.ModuleList()
        self.tail_words = nn.ParameterList()
        self.tail_bias = nn.ParameterList()
        for i in range(n_tails):
            size = self.bounds[i + 2] - self.bounds[i + 1]
            if tie:
                self.tail_proj.append(nn.Identity())
            else:
                small = max(1, features // TAIL_DIVISOR ** (i + 1))
                self.tail_proj.append(nn.Linear(features, small, bias=False))
                words = nn.Parameter(torch.empty(size, small))
                nn.init.normal_(words, std=small**-0.5)
                self.tail_words.append(words)
            self.tail_bias.append(nn.Parameter(torch.zeros(size)))

    # --- weights --------------------------------------------------------------------------------
    def _word_weights(self) -> list[Tensor]:
        """Each cluster's word vectors: head words first, then each tail's [words, W_i].

        Tied, one ``split`` of the embedding: its backward joins the pieces' gradients in one
        pass, where a slice per cluster would zero and add a full-size gradient each."""
        if self.tied:
            sizes = [b - a for a, b in itertools.pairwise(self.bounds)]
            return list(self.embedding[0].weight.split(sizes))
        assert self.head_words is not None
        return [self.head_words, *self.tail_words]

    def _tail_log_probs(self, h: Tensor, i: int, words: Tensor) -> Tensor:
        # h: [..., W] -> log p(word | cluster i): [..., words of cluster i]
        logits = F.linear(self.tail_proj[i](h), words, self.tail_bias[i])
        return F.log_softmax(logits, dim=-1)

    # --- computation ----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Full log-probabilities: x [..., F] -> [..., V]."""
        h = self.proj(x)
        words = self._word_weights()
        head_weight = torch.cat([words[0], self.clusters], dim=0)  # [head words + clusters, W]
        head = F.log_softmax(F.linear(h, head_weight, self.head_bias), dim=-1)
        first = self.bounds[1]
        parts = [head[..., :first]]
        for i in range(len(self.bounds) - 2):
            tail = self._tail_log_probs(h, i, words[i + 1])
            parts.append(tail + head[..., first + i : first + i + 1])
        return torch.cat(parts, dim=-1)

    def loss(self, x: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Mean negative log-likelihood of ``targets`` [N] given ``x`` [N, F], reading each tail
        for its own targets only; and the count of targets that are the most likely head word
        (training accuracy: a tail word, rarely the most likely, counts as a miss)."""
        h = self.proj(x)  # [N, W]
        words = self._word_weights()
        head_weight = torch.cat([words[0], self.clusters], dim=0)  # [head words + clusters, W]
        head = F.log_softmax(F.linear(h, head_weight, self.head_bias), dim=-1)
        first = self.bounds[1]
        # cluster of each target: 0 the head, k the (k-1)-th tail
        cluster = torch.bucketize(
            targets, torch.tensor(self.bounds[1:-1], device=targets.device), right=True
        )
        head_index = torch.where(cluster == 0, targets, first + cluster - 1)
        log_p = head.gather(1, head_index.unsqueeze(1)).squeeze(1)  # [N]
        for i in range(len(self.bounds) - 2):
            rows = (cluster == i + 1).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            tail = self._tail_log_probs(h.index_select(0, rows), i, words[i + 1])  # [n, size_i]
            within = (targets.index_select(0, rows) - self.bounds[i + 1]).unsqueeze(1)
            log_p = log_p.index_add(0, rows, tail.gather(1, within).squeeze(1))
        correct = (head[:, :first].argmax(-1) == targets).sum()  # tail words: rarely the top
        return -log_p.mean(), correct
