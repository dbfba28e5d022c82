"""The plugin contracts: what a strategy and a logits processor look like, and what they yield.

A plugin class has three class attributes, ``name``, ``description`` (one line) and ``options``
(a tuple of ``OptionSpec``), and is built with its options as keyword arguments.

* A **strategy** owns the decoding loop: ``run(ctx)`` yields ``Choice`` items (one token each,
  committed to the reply in order), and may yield ``BeamsUpdate`` and ``NBest`` to show a search.
  It drives the model through ``ctx.session`` and never needs to know the kind of model.
* A **processor** is a pure function on scores: ``process(logits[B, V], history[B, T], info)``
  returns new float32 logits of the same shape; it must not change its input in place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from termlm.decoding.options import OptionSpec

if TYPE_CHECKING:
    from termlm.decoding.session import Session


class TokenizerLike(Protocol):
    """The part of ``termlm.tokenizers.Tokenizer`` decoding uses."""

    vocab_size: int
    pad_id: int
    eos_id: int | None

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_text(self, token_id: int) -> str: ...


@dataclass(frozen=True)
class Choice:
    """A token a strategy commits to the reply.

    ``prob``/``logprob``: the model's probability of the token after processors, at temperature 1.
    ``alternatives``: (token id, probability) of the most likely tokens at this position.
    """

    token_id: int
    prob: float
    logprob: float
    alternatives: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Hypothesis:
    """One beam (live or finished): the reply's token ids and its length-penalised score."""

    token_ids: tuple[int, ...]
    score: float
    finished: bool = False


@dataclass(frozen=True)
class BeamsUpdate:
    """The live beams after one search step."""

    step: int
    beams: tuple[Hypothesis, ...]


@dataclass(frozen=True)
class NBest:
    """A search's final hypotheses, best first (``finished``: ended with the eos token)."""

    hypotheses: tuple[Hypothesis, ...]


Item = Choice | BeamsUpdate | NBest


@dataclass(frozen=True)
class StepInfo:
    """What a processor may know besides the scores and the history."""

    prompt_length: int  # history[:, :prompt_length] is the prompt; the rest was generated
    vocab_size: int
    eos_id: int | None
    tokenizer: TokenizerLike


@runtime_checkable
class Strategy(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[OptionSpec, ...]]

    def run(self, ctx: DecodeContext) -> Iterator[Item]: ...


@runtime_checkable
class Processor(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[OptionSpec, ...]]

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray: ...


@dataclass
class DecodeContext:
    """Everything a strategy needs for one generation."""

    session: Session  # the model after the prompt, one row; strategies may replace it
    tokenizer: TokenizerLike
    vocab_size: int
    eos_id: int | None
    max_new_tokens: int
    rng: np.random.Generator
    process: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (logits[B,V], history[B,T]) -> [B,V]
    cancel: threading.Event
    extras: dict[str, Any]

    def scores(self, session: Session | None = None) -> np.ndarray:
        """The processed next-token logits of every row of a session: [B, V] float32."""
        s = self.session if session is None else session
        return self.process(s.logits, s.history())

    def choice(self, scores: np.ndarray, token_id: int, top: int = 5) -> Choice:
        """A ``Choice`` with the token's probability and the ``top`` alternatives (scores: [V])."""
        if not 0 <= int(token_id) < scores.shape[-1]:
            raise ValueError(
                f"token id {int(token_id)} is outside the vocabulary [0, {scores.shape[-1]})"
            )
        logp = log_softmax(scores)
        probs = np.exp(logp)
        k = min(top, probs.shape[-1])
        best = np.argpartition(-probs, k - 1)[:k]
        best = best[np.argsort(-probs[best], kind="stable")]
        return Choice(
            token_id=int(token_id),
            prob=float(probs[token_id]),
            logprob=float(logp[token_id]),
            alternatives=tuple((int(i), float(probs[i])) for i in best),
        )

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log-probabilities along the last axis; rows of only -inf give -inf, never NaN."""
    x = np.asarray(logits, dtype=np.float64)
    top = np.max(x, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = x - top
        total = np.sum(np.exp(shifted), axis=-1, keepdims=True)
        out = shifted - np.log(total)
    return np.where(np.isnan(out), -np.inf, out)
