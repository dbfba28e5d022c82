"""How surprised a model is by every token of a text, as a stream: what `termlm score` prints.

The text is read from an empty state in chunks (one model call per chunk for models that carry
state, one per token for window models), as the chat's score view reads it (termlm.decoding.trace),
but each token's measures are handed out as soon as its chunk is read, so a long text streams and
nothing grows with its length.

    for score in iter_token_scores(model, ids):
        score.surprisal   # -log p(token | everything before it), nats
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from termlm.decoding.session import start_session
from termlm.decoding.trace import _chunk_size, _log_softmax, _read
from termlm.runtime.types import StepModel

LN2 = math.log(2.0)


@dataclass(frozen=True)
class TokenScore:
    """One token of a scored text."""

    index: int  # position in the text's token ids
    id: int
    logprob: float  # log p(token | everything before it), nats (<= 0)
    entropy: float  # entropy of the distribution the token was drawn from, nats
    top: tuple[tuple[int, float], ...]  # the most likely tokens there: (id, logprob)

    @property
    def surprisal(self) -> float:
        return -self.logprob


def _score_block(begin: int, logits: np.ndarray, tokens: list[int], top_k: int) -> list[TokenScore]:
    """Scores of ``tokens`` [T] (text positions ``begin``...), each read against its row of
    ``logits`` [T, V]: the scores the model gave just before that token."""
    logp = _log_softmax(logits)  # [T, V]
    rows = np.arange(len(tokens))
    picked = logp[rows, tokens]  # [T]
    entropy = -(np.exp(logp) * logp).sum(axis=-1)  # [T]
    k = min(top_k, logp.shape[-1])
    if k:
        best = np.argpartition(-logp, k - 1, axis=-1)[:, :k]  # [T, k], unordered
        order = np.argsort(-np.take_along_axis(logp, best, axis=-1), axis=-1, kind="stable")
        best = np.take_along_axis(best, order, axis=-1)  # [T, k], most likely first
    return [
        TokenScore(
            index=begin + t,
            id=token,
            logprob=float(picked[t]),
            entropy=float(entropy[t]),
            top=tuple((int(i), float(logp[t, i])) for i in best[t]) if k else (),
        )
        for t, token in enumerate(tokens)
    ]


def iter_token_scores(
    model: StepModel, ids: Sequence[int], *, top_k: int = 5, chunk: int | None = None
) -> Iterator[TokenScore]:
    """Score ``ids`` read from an empty state; one ``TokenScore`` per id, in order.

    ``chunk``: tokens per model call for models that carry state (default and most: half the
    context for models with a bounded memory; default 256 for plain recurrent ones).
    """
    if top_k < 0:
        raise ValueError(f"top_k must be 0 or more, got {top_k}")
    tokens = [int(t) for t in ids]
    if not tokens:
        return
    session, _ = start_session(model, [], None)
    size = _block_size(model, chunk)
    for begin in range(0, len(tokens), size):
        block = tokens[begin : begin + size]
        before = session.logits[0:1]  # [1, V]: the scores the block's first token was read against
        _read(session, block)
        if len(block) > 1:
            out = session.last_output
            assert out is not None
            inside = np.asarray(out.logits[0, -len(block) : -1], dtype=np.float32)  # [T-1, V]
            before = np.concatenate([before, inside])
        yield from _score_block(begin, before, block, top_k)


def _block_size(model: StepModel, chunk: int | None) -> int:
    """Tokens per model call: 1 for window models; at most half the context for bounded memories
    (a longer block would push its own first tokens out of the memory)."""
    if not model.stateful:
        return 1
    size = _chunk_size(model, chunk)
    axes = getattr(model, "state_time_axes", None)
    if axes is not None and axes():
        size = min(size, max(1, int(model.context) // 2))
    return size


@dataclass
class ScoreTotals:
    """Running totals of a scored text: mean surprisal (loss), perplexity, bits per character."""

    tokens: int = 0
    chars: int = 0
    nats: float = 0.0  # summed surprisal

    def add(self, score: TokenScore) -> None:
        self.tokens += 1
        self.nats += score.surprisal

    @property
    def loss(self) -> float:
        """Mean surprisal, nats per token (NaN before any token)."""
        return self.nats / self.tokens if self.tokens else math.nan

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 700.0)) if self.tokens else math.nan

    @property
    def bpc(self) -> float:
        """Bits per character: comparable across tokenizers."""
        return self.nats / max(self.chars, 1) / LN2 if self.tokens else math.nan

    def to_json(self) -> dict[str, float | int | None]:
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "loss": finite(self.loss),
            "ppl": finite(self.ppl),
            "bpc": finite(self.bpc),
            "tokens": self.tokens,
            "chars": self.chars,
        }
