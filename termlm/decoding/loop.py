"""The generation loop: a plain synchronous iterator of events.

``generate`` checks everything it can before the first event (unknown strategy, bad options,
prompt ids outside the vocabulary) and raises ``PluginError``/``ConfigError`` then. After that it
never raises: whatever goes wrong ends the stream with one ``DoneEvent`` whose ``stop_reason`` is
"error" and whose result holds the text so far.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from termlm.decoding.contracts import (
    BeamsUpdate,
    Choice,
    DecodeContext,
    Hypothesis,
    NBest,
    StepInfo,
    TokenizerLike,
)
from termlm.decoding.detok import REPLACEMENT, StreamDecoder
from termlm.decoding.events import (
    Alternative,
    Beam,
    BeamsEvent,
    DoneEvent,
    Event,
    GenerationResult,
    TokenEvent,
)
from termlm.decoding.registry import PluginRegistry
from termlm.decoding.session import ModelStepFailed, Session, start_session
from termlm.decoding.stopping import StopMatcher
from termlm.errors import ConfigError
from termlm.runtime.types import State, StepModel

_TAIL = 4  # tokens decoded before a beam's new one, for its spacing


class ProcessorFailed(RuntimeError):
    """A logits processor raised or returned something unusable."""


NO_ALLOWED_TOKEN = "no_allowed_token"  # the stop reason when every token is banned


class ProcessorChain:
    """The processors in order, as one function (logits[B,V] or [V], history[B,T] or [T]).

    NaN scores (from the model or a processor) count as banned (-inf). ``exhausted`` tells
    whether the latest call left no allowed token in any row. ``session_scores(session)`` is
    the fast way: processors that offer ``start`` keep trackers on the session (updated as it
    reads tokens, forked with its rows), the others get the history as usual.
    """

    def __init__(
        self, processors: Sequence[Any], info: StepInfo, never: Sequence[int] = ()
    ) -> None:
        self.processors = [p for p in processors if getattr(p, "active", True)]
        self.info = info
        self.never = np.asarray(sorted(set(never)), dtype=np.int64)  # ids never to emit
        self._masks = bool(self.never.size) and self.never.size < info.vocab_size
        self._never_mask = np.zeros(info.vocab_size, dtype=bool)  # [V]: True where never
        self._never_mask[self.never[self.never < info.vocab_size]] = True
        self._n_fast = sum(1 for p in self.processors if _fast(p))
        self.exhausted = False

    def __call__(self, logits: np.ndarray, history: np.ndarray) -> np.ndarray:
        flat = logits.ndim == 1
        scores = np.asarray(logits, dtype=np.float32)
        scores = scores[None, :] if flat else scores  # [B, V]
        hist = np.asarray(history, dtype=np.int64)
        hist = hist.reshape(scores.shape[0], -1) if hist.ndim == 1 or flat else hist  # [B, T]
        if self.never.size and self.never.size < scores.shape[-1]:
            scores = scores.copy()
            scores[:, self.never[self.never < scores.shape[-1]]] = -np.inf
        for proc in self.processors:
            scores = self._checked(proc, lambda s, p=proc: p.process(s, hist, self.info), scores)
        scores = self._settle(scores)
        return scores[0] if flat else scores

    def attach(self, session: Session) -> None:
        """Start the trackers of the processors that offer them, on ``session``'s rows."""
        history = session.history() if any(_fast(p) for p in self.processors) else None
        trackers = []
        for proc in self.processors:
            if _fast(proc):
                try:
                    trackers.append(proc.start(history, self.info))
                except Exception as exc:
                    raise ProcessorFailed(f"processor {proc.name!r} failed: {exc}") from exc
        session.trackers = trackers

    def session_scores(self, session: Session) -> np.ndarray:
        """The processed next-token scores of every row of ``session``: [B, V] float32."""
        scores = np.asarray(session.logits, dtype=np.float32)  # [B, V]
        if (
            scores.ndim != 2
            or scores.shape[1] != self.info.vocab_size
            or len(session.trackers) != self._n_fast  # a session the chain did not start
        ):
            return self(scores, session.history())
        if self._masks:
            scores = np.where(self._never_mask, np.float32(-np.inf), scores)
        if not self.processors:
            return self._settle(scores)
        trackers = iter(session.trackers)
        history: np.ndarray | None = None
        for proc in self.processors:
            if _fast(proc):
                tracker = next(trackers)
                scores = self._checked(proc, tracker.process, scores)
            else:
                if history is None:
                    history = session.history()
                hist = history
                scores = self._checked(
                    proc, lambda s, p=proc, h=hist: p.process(s, h, self.info), scores
                )
        return self._settle(scores)

    def _settle(self, scores: np.ndarray) -> np.ndarray:
        """NaN scores banned (-inf); ``exhausted`` set when no row has an allowed token."""
        peak = scores.max() if scores.size else np.float32(-np.inf)
        if np.isnan(peak):  # max propagates NaN: only then look for them
            scores = np.where(np.isnan(scores), np.float32(-np.inf), scores)
            peak = scores.max()
        self.exhausted = not bool(peak > -np.inf)
        return scores

    @staticmethod
    def _checked(proc: Any, fn: Any, scores: np.ndarray) -> np.ndarray:
        try:
            out = fn(scores)
        except Exception as exc:
            raise ProcessorFailed(f"processor {proc.name!r} failed: {exc}") from exc
        out = np.asarray(out)
        if out.shape != scores.shape:
            raise ProcessorFailed(
                f"processor {proc.name!r} returned shape {out.shape}, expected {scores.shape}"
            )
        return out.astype(np.float32, copy=False)


def _fast(processor: Any) -> bool:
    return callable(getattr(processor, "start", None))


def _never_emitted(tokenizer: Any) -> list[int]:
    """Padding and the unknown-word token are never generated: they are not text."""
    return [
        i
        for i in (getattr(tokenizer, "pad_id", None), getattr(tokenizer, "unk_id", None))
        if isinstance(i, int)
    ]


@dataclass
class _Plan:
    model: StepModel
    tokenizer: TokenizerLike
    prompt_ids: list[int]
    strategy: Any
    processors: list[Any]
    max_new_tokens: int
    stop: tuple[str, ...]
    seed: int | None
    state: State | None
    cancel: threading.Event
    alternatives: int
    live_beams: bool


def generate(
    model: StepModel,
    tokenizer: TokenizerLike,
    prompt: str | Sequence[int],
    *,
    registry: PluginRegistry,
    strategy: str = "sample",
    options: Mapping[str, Any] | None = None,
    max_new_tokens: int = 200,
    stop: Sequence[str] = (),
    seed: int | None = None,
    state: State | None = None,
    cancel: threading.Event | None = None,
    alternatives: int = 5,
    live_beams: bool = True,
) -> Iterator[Event]:
    """Generate a reply as events, always ending with exactly one ``DoneEvent``.

    What the listener wants decides what is computed: ``alternatives``, how many of the most
    likely tokens each ``TokenEvent`` lists (0: none, the cheapest); ``live_beams``, whether a
    search's ``BeamsEvent`` s are wanted (each costs time in the length of the beams).

    Raises ``PluginError`` or ``ConfigError`` at once (before any event) for an unknown strategy,
    a bad option, a negative ``max_new_tokens`` or prompt ids outside the vocabulary.
    """
    strat, procs = registry.build(strategy, dict(options or {}))
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 0
    ):
        raise ConfigError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if isinstance(alternatives, bool) or not isinstance(alternatives, int) or alternatives < 0:
        raise ConfigError(f"alternatives must be an integer >= 0, got {alternatives!r}")
    if isinstance(prompt, str):
        ids = list(tokenizer.encode(prompt)) if prompt else []
    else:
        ids = [int(i) for i in prompt]
    vocab = int(model.vocab_size)
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise ConfigError(f"prompt token id {bad[0]} is outside the vocabulary [0, {vocab})")
    plan = _Plan(
        model=model,
        tokenizer=tokenizer,
        prompt_ids=ids,
        strategy=strat,
        processors=procs,
        max_new_tokens=max_new_tokens,
        stop=tuple(s for s in stop if s),
        seed=seed,
        state=state,
        cancel=cancel or threading.Event(),
        alternatives=alternatives,
        live_beams=bool(live_beams),
    )
    return _run(plan)


def _run(plan: _Plan) -> Iterator[Event]:
    started = time.perf_counter()
    name = getattr(plan.strategy, "name", type(plan.strategy).__name__)
    tokenizer = plan.tokenizer
    vocab = int(plan.model.vocab_size)
    eos_id = getattr(tokenizer, "eos_id", None)
    token_ids: list[int] = []
    logprobs: list[float] = []
    texts: list[str] = []
    n_best: list[Beam] = []
    reason, error = "length", None
    dropped = 0
    start: Session | None = None
    ctx: DecodeContext | None = None
    stopper = StopMatcher(plan.stop)
    decoder = StreamDecoder(tokenizer, plan.prompt_ids)
    beam_texts = _BeamTexts(tokenizer)
    token_text = tokenizer.token_text

    try:
        session, dropped = start_session(plan.model, plan.prompt_ids, plan.state)
        start = session.select([0])
        never = set(_never_emitted(plan.tokenizer))
        info = StepInfo(
            prompt_length=int(session.prompt.shape[0]),
            vocab_size=vocab,
            eos_id=eos_id,
            tokenizer=tokenizer,
        )
        chain = ProcessorChain(plan.processors, info, never=sorted(never))
        ctx = DecodeContext(
            session=session,
            tokenizer=tokenizer,
            vocab_size=vocab,
            eos_id=eos_id,
            max_new_tokens=plan.max_new_tokens,
            rng=np.random.default_rng(plan.seed),
            process=chain,
            cancel=plan.cancel,
            extras={},
            alternatives=plan.alternatives,
            live_beams=plan.live_beams,
        )
    except ModelStepFailed as exc:
        reason, error = "error", str(exc)
    except Exception as exc:
        reason, error = "error", f"reading the prompt failed: {type(exc).__name__}: {exc}"

    items: Any = None
    if ctx is not None and plan.max_new_tokens > 0:
        try:
            chain.attach(ctx.session)
            items = iter(plan.strategy.run(ctx))  # run() may raise at once, or not be a generator
        except ProcessorFailed as exc:
            reason, error = "error", str(exc)
        except Exception as exc:
            reason, error = "error", f"plugin {name!r} failed: {type(exc).__name__}: {exc}"
    if items is not None:
        try:
            while True:
                if plan.cancel.is_set():
                    reason = "cancelled"
                    break
                try:
                    item = next(items)
                except StopIteration:
                    reason = NO_ALLOWED_TOKEN if chain.exhausted else "length"
                    break
                if type(item) is not Choice:
                    if isinstance(item, BeamsUpdate):
                        if plan.live_beams:
                            yield BeamsEvent(step=item.step, beams=beam_texts.update(item.beams))
                        continue
                    if isinstance(item, NBest):
                        n_best = [_beam(tokenizer, h) for h in item.hypotheses]
                        continue
                    if not isinstance(item, Choice):
                        reason = "error"
                        error = f"strategy {name!r} yielded {type(item).__name__}, not a Choice"
                        break
                token = item.token_id
                if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
                    reason, error = "error", f"strategy {name!r} produced a token id {token!r}"
                    break
                token = int(token)
                if not 0 <= token < vocab:
                    reason = "error"
                    error = (
                        f"strategy {name!r} produced token id {token}, "
                        f"outside the vocabulary [0, {vocab})"
                    )
                    break
                if not math.isfinite(item.logprob) or token in never:  # a banned token
                    if chain.exhausted:
                        reason = NO_ALLOWED_TOKEN
                    else:
                        reason = "error"
                        error = f"strategy {name!r} chose token {token}, which is banned"
                    break
                if token == eos_id:
                    reason = "eos"
                    break
                token_ids.append(token)
                logprob = float(item.logprob)
                logprobs.append(logprob)
                alternatives = item.alternatives
                event = TokenEvent(
                    token_id=token,
                    text=decoder.push(token),
                    prob=float(item.prob),
                    logprob=logprob,
                    alternatives=tuple(
                        Alternative(int(i), token_text(int(i)), float(p))
                        for i, p in alternatives[: plan.alternatives]
                    )
                    if alternatives and plan.alternatives
                    else (),
                    index=len(token_ids) - 1,
                )
                for out in stopper.push(event):
                    texts.append(out.text)
                    yield out
                if stopper.hit:
                    reason = "stop"
                    break
                if len(token_ids) >= plan.max_new_tokens:
                    reason = "length"
                    break
        except (ProcessorFailed, ModelStepFailed) as exc:
            reason, error = "error", str(exc)
        except Exception as exc:
            reason, error = "error", f"plugin {name!r} failed: {type(exc).__name__}: {exc}"
        finally:
            try:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
            except Exception as exc:  # a strategy failing while being closed
                if error is None:
                    reason, error = "error", f"plugin {name!r} failed: {exc}"
    if not stopper.hit:
        for out in stopper.flush():
            texts.append(out.text)
            yield out

    final_state: State | None = None
    if ctx is not None and start is not None:
        try:
            final_state = _final_state(ctx.session, start, token_ids)
        except Exception:
            final_state = None
    result = GenerationResult(
        text="".join(texts),
        token_ids=token_ids,
        logprobs=logprobs,
        stop_reason=reason,
        seconds=time.perf_counter() - started,
        n_best=n_best,
        state=final_state,
        error=error,
        prompt_tokens_dropped=dropped,
    )
    yield DoneEvent(result=result)


def _final_state(session: Session, start: Session, token_ids: list[int]) -> State:
    """The state after prompt + reply: the strategy's own row when it matches, else re-read."""
    done = session.generated
    if session.rows >= 1 and done.shape[1] == len(token_ids) and done[0].tolist() == token_ids:
        return session.state(0)
    fresh = start.select([0])
    if token_ids:
        fresh.extend(np.asarray([token_ids], dtype=np.int64))
    return fresh.state(0)


def _beam(tokenizer: TokenizerLike, hyp: Hypothesis) -> Beam:
    ids = [int(i) for i in hyp.token_ids]
    eos = getattr(tokenizer, "eos_id", None)
    visible = ids[:-1] if hyp.finished and ids and ids[-1] == eos else ids
    return Beam(
        text=tokenizer.decode(visible),
        score=float(hyp.score),
        token_ids=tuple(visible),
        finished=hyp.finished,
    )


class _BeamTexts:
    """The text of each live beam, kept as the beams grow (a beam that names the beam it
    extends by one token costs the decoding of that token, not of the whole beam)."""

    def __init__(self, tokenizer: TokenizerLike) -> None:
        self._tokenizer = tokenizer
        self._eos = getattr(tokenizer, "eos_id", None)
        self._last: list[tuple[tuple[int, ...], str]] = []  # (visible ids, text) per beam

    def update(self, hyps: Sequence[Hypothesis]) -> tuple[Beam, ...]:
        beams: list[Beam] = []
        kept: list[tuple[tuple[int, ...], str]] = []
        for hyp in hyps:
            ids = tuple(int(i) for i in hyp.token_ids) if not _plain_ids(hyp) else hyp.token_ids
            visible = ids[:-1] if hyp.finished and ids and ids[-1] == self._eos else ids
            text = self._text(visible, hyp.parent)
            kept.append((visible, text))
            beams.append(
                Beam(text=text, score=float(hyp.score), token_ids=visible, finished=hyp.finished)
            )
        self._last = kept
        return tuple(beams)

    def _text(self, ids: tuple[int, ...], parent: int | None) -> str:
        decode = self._tokenizer.decode
        if parent is not None and 0 <= parent < len(self._last) and ids:
            before_ids, before = self._last[parent]
            n = len(before_ids)
            if n + 1 == len(ids) and (n == 0 or ids[n - 1] == before_ids[-1]):
                tail = ids[max(0, n - _TAIL) : n]
                head = decode(tail)
                whole = decode((*tail, ids[-1]))
                if whole.startswith(head) and not head.endswith(REPLACEMENT):
                    return before + whole[len(head) :]
        return decode(list(ids))


def _plain_ids(hyp: Hypothesis) -> bool:
    ids = hyp.token_ids
    return type(ids) is tuple and (not ids or type(ids[-1]) is int)
