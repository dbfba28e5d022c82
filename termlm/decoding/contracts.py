"""The plugin contracts: what a strategy and a logits processor look like, and what they yield.

A plugin class has three class attributes, ``name``, ``description`` (one line) and ``options``
(a tuple of ``OptionSpec``), and is built with its options as keyword arguments.

* A **strategy** owns the decoding loop: ``run(ctx)`` yields ``Choice`` items (one token each,
  committed to the reply in order), and may yield ``BeamsUpdate`` and ``NBest`` to show a search.
  It drives the model through ``ctx.session`` and never needs to know the kind of model.
* A **processor** is a pure function on scores: ``process(logits[B, V], history[B, T], info)``
  returns new float32 logits of the same shape; it must not change its input in place.
  A processor that depends on the history may also offer ``start(history[B, T], info)``,
  returning a ``Tracker``: running counts kept up to date token by token, so that a step costs
  the same however long the text is. When it does, the loop uses the tracker, and ``process``
  stays the reference it must agree with. ``start`` may return None when the processor has
  nothing to do for this model: the loop then leaves it out of every step.
"""

from __future__ import annotations

import math
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
    """One beam (live or finished): the reply's token ids and its length-penalised score.

    ``token_ids``: a tuple, or a ``TokenPath`` (``termlm.decoding.paths``: a path in a tree of
    nodes, one per token, that reads as a tuple without being copied at every step).

    ``parent``: in a ``BeamsUpdate``, the index of the beam of the previous update that this one
    extends by its last token (None: unknown). It lets the loop keep each beam's text as it grows
    instead of decoding every beam whole at every step.
    """

    token_ids: Sequence[int]
    score: float
    finished: bool = False
    parent: int | None = None


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
    """What a processor may know besides the scores and the history.

    * ``prompt_length``: how many tokens of the history are the prompt (``history[:,
      :prompt_length]``); the rest was generated. A penalty on "the reply" reads the rest.
    * ``vocab_size``: ``V``, the width of the scores.
    * ``eos_id``: the model's end-of-text token, or None when it has none (char and word models
      trained on plain text usually have none).
    * ``tokenizer``: the model's tokenizer (``token_text(i)``, ``encode``, ``decode``).
    """

    prompt_length: int  # history[:, :prompt_length] is the prompt; the rest was generated
    vocab_size: int
    eos_id: int | None
    tokenizer: TokenizerLike


@runtime_checkable
class Strategy(Protocol):
    """A decoding strategy: ``run(ctx)`` is a generator of ``Choice`` (and, for a search,
    ``BeamsUpdate``/``NBest``) items. One instance is built per generation, with the option
    values as keyword arguments; the loop stops the generator when the reply is done."""

    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[OptionSpec, ...]]

    def run(self, ctx: DecodeContext) -> Iterator[Item]: ...


class Tracker(Protocol):
    """A fast processor's running state for the rows of one session.

    The loop calls ``push`` after each token every row reads, ``select`` when rows are forked,
    dropped or reordered (beam search, lookahead; a new tracker, the old one stays valid) and
    ``process`` for the scores of the rows' next token.
    """

    def push(self, tokens: np.ndarray) -> None: ...  # [B] int64: one token per row

    def select(self, index: np.ndarray) -> Tracker: ...  # [B'] rows of this tracker

    def process(self, logits: np.ndarray) -> np.ndarray: ...  # [B, V] -> new [B, V] float32


@runtime_checkable
class Processor(Protocol):
    """A logits processor: ``process(logits[B, V], history[B, T], info)`` returns new float32
    logits of the same shape and leaves its inputs unchanged.

    Lifetime: one instance per generation (built with the option values as keyword arguments
    each time ``generate`` starts), so what it keeps in ``self`` lasts one reply. An instance
    whose ``active`` attribute is False is skipped. It may offer ``start(history, info)``
    returning a ``Tracker`` (see docs/plugins.md, "A fast plugin")."""

    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[OptionSpec, ...]]

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray: ...


@dataclass
class DecodeContext:
    """Everything a strategy needs for one generation.

    * ``session``: the model after the prompt, one row (``Session``); a strategy may replace it
      with a forked one (``session.select``), and ``feed``s the tokens it picks.
    * ``rng``: a ``numpy.random.Generator`` seeded by the generation's ``seed`` (fresh
      entropy when it is None): draw every random number from it, so a seed repeats a text.
    * ``scores(session)``: the processed next-token scores, ``[B, V]`` float32.
    * ``choice(scores, token)``: the ``Choice`` to yield; ``scores`` is one row ``[V]`` of what
      ``scores()`` returned (processed logits at temperature 1, not probabilities and not warped
      by a temperature), so the probability shown is the model's.
    * ``alternatives``/``live_beams``: what the listener wants (compute no more).
    * ``max_new_tokens``, ``eos_id``, ``vocab_size``, ``tokenizer``: the generation's limits and
      the model's facts; ``cancel`` is set when the listener stops (the loop checks it too).
    """

    session: Session  # the model after the prompt, one row; strategies may replace it
    tokenizer: TokenizerLike
    vocab_size: int
    eos_id: int | None
    max_new_tokens: int
    rng: np.random.Generator
    process: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (logits[B,V], history[B,T]) -> [B,V]
    cancel: threading.Event
    extras: dict[str, Any]
    alternatives: int = 5  # how many alternatives per token the listener wants (0: none)
    live_beams: bool = True  # whether the listener shows BeamsUpdates (a search may skip them)

    def scores(self, session: Session | None = None) -> np.ndarray:
        """The processed next-token logits of every row of a session: [B, V] float32."""
        s = self.session if session is None else session
        fast = getattr(self.process, "session_scores", None)
        if fast is not None:
            scores: np.ndarray = fast(s)
            return scores
        return self.process(s.logits, s.history())

    def logit_bans(self, session: Session | None = None) -> tuple[int, ...] | None:
        """When the processed scores of a session are only its logits with some ids banned (no
        processor has anything to do; padding and the unknown token are always banned): those
        ids. A strategy may then read ``session.logits`` and treat them, and any NaN, as -inf
        itself instead of calling ``scores`` at every token. None when processors are at work."""
        s = self.session if session is None else session
        bans = getattr(self.process, "logit_bans", None)
        return None if bans is None else bans(s)  # type: ignore[no-any-return]

    def choice(self, scores: np.ndarray, token_id: int, top: int | None = None) -> Choice:
        """A ``Choice`` with the token's probability and the ``top`` alternatives.

        ``scores``: one row ``[V]`` of ``scores()`` (processed logits, temperature 1; a token at
        -inf has probability 0). ``top`` defaults to as many alternatives as the listener wants
        (``alternatives``). ``ValueError`` for an id outside the vocabulary.
        """
        token_id = int(token_id)
        if not 0 <= token_id < scores.shape[-1]:
            raise ValueError(
                f"token id {token_id} is outside the vocabulary [0, {scores.shape[-1]})"
            )
        k = self.alternatives if top is None else top
        if k <= 0:
            logprob = token_logprob(scores, token_id)
            return Choice(token_id, math.exp(logprob), logprob)
        k = min(k, scores.shape[-1])
        logp = log_softmax(scores)
        probs = np.exp(logp)
        best = np.argpartition(-probs, k - 1)[:k]
        best = best[np.argsort(-probs[best], kind="stable")]
        return Choice(
            token_id=token_id,
            prob=float(probs[token_id]),
            logprob=float(logp[token_id]),
            alternatives=tuple(zip(best.tolist(), probs[best].tolist(), strict=True)),
        )

    @property
    def cancelled(self) -> bool:
        """Whether the listener asked to stop (``cancel`` is set)."""
        return self.cancel.is_set()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log-probabilities along the last axis; rows of only -inf give -inf, never NaN."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 1:
        peak = x.max()
        if math.isfinite(peak):  # the common case: no NaN possible (see below)
            shifted = x - peak
            return shifted - np.log(np.exp(shifted).sum())
    top = np.maximum.reduce(x, axis=-1, keepdims=True)  # x.max(...) without its wrapper
    if np.isfinite(top).all():  # the common case: no row all -inf, no +inf, no NaN possible
        shifted = x - top
        return shifted - np.log(np.add.reduce(np.exp(shifted), axis=-1, keepdims=True))
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = x - top
        total = np.sum(np.exp(shifted), axis=-1, keepdims=True)
        out = shifted - np.log(total)
    return np.where(np.isnan(out), -np.inf, out)


def token_logprob(
    scores: np.ndarray, token_id: int, best: int | None = None, banned: Sequence[int] = ()
) -> float:
    """``log_softmax(scores)[token_id]`` for one row [V], without the rest of the row: the same
    operations on the same float64 values, so the same number. ``best``: the row's argmax,
    when the caller has it (greedy: the token itself). ``banned``: ids to count as -inf (the
    row is not changed), when ``best`` is the maximum of the others and not one of them."""
    if banned and best is None:
        return token_logprob(_banning(scores, banned), token_id)
    if scores.ndim != 1 or not scores.size:
        return float(log_softmax(_banning(scores, banned))[token_id])
    if best is None:
        best = int(scores.argmax())
    peak = scores.item(best)  # the maximum (argmax finds a NaN first)
    if not math.isfinite(peak):
        return float(log_softmax(_banning(scores, banned))[token_id])
    exps = np.subtract(scores, peak, dtype=np.float64)  # as float64 then minus the peak
    np.exp(exps, out=exps)
    for i in banned:
        exps[i] = 0.0  # exp(-inf - peak)
    score = -math.inf if token_id in banned else scores.item(token_id)
    return float((score - peak) - np.log(np.add.reduce(exps)))


def _banning(scores: np.ndarray, banned: Sequence[int]) -> np.ndarray:
    """``scores`` with the ``banned`` ids at -inf (a copy when there are any)."""
    if not banned:
        return scores
    out = np.array(scores, dtype=np.result_type(scores.dtype, np.float32))
    out[..., list(banned)] = -np.inf
    return out
