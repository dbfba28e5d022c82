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

from termlm.bounds import check_seed
from termlm.decoding.beamtext import BeamTexts, final_beam
from termlm.decoding.chain import ProcessorChain, ProcessorFailed
from termlm.decoding.contracts import (
    BeamsUpdate,
    Choice,
    DecodeContext,
    NBest,
    StepInfo,
    TokenizerLike,
)
from termlm.decoding.detok import StreamDecoder
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

NO_ALLOWED_TOKEN = "no_allowed_token"  # the stop reason when every token is banned


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
    reply_prefix: list[int]


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
    reply_prefix: Sequence[int] = (),
) -> Iterator[Event]:
    """Generate a reply as events, always ending with exactly one ``DoneEvent``.

    What the listener wants decides what is computed: ``alternatives``, how many of the most
    likely tokens each ``TokenEvent`` lists (0: none, the cheapest); ``live_beams``, whether a
    search's ``BeamsEvent`` s are wanted (each costs time in the length of the beams).

    ``reply_prefix``: tokens already in the reply (a branch keeps the start of a reply): read
    after the prompt and counted as reply, not prompt, by the processors; the events and the
    result hold only the new tokens.

    Raises ``PluginError`` or ``ConfigError`` at once (before any event) for an unknown strategy,
    a bad option, a negative ``max_new_tokens`` or prompt ids outside the vocabulary.
    """
    check_seed(seed, "seed")
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
    prefix = [int(i) for i in reply_prefix]
    bad = [i for i in ids + prefix if not 0 <= i < vocab]
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
        reply_prefix=prefix,
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
    decoder = StreamDecoder(tokenizer, plan.prompt_ids + plan.reply_prefix)
    beam_texts = BeamTexts(tokenizer)
    token_text = tokenizer.token_text

    try:
        session, dropped = start_session(plan.model, plan.prompt_ids, plan.state)
        if plan.reply_prefix:  # a branch's kept tokens: read as reply, not as prompt
            session.extend(np.asarray([plan.reply_prefix], dtype=np.int64))
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
        # The per-token path: locals, and the checks a well-behaved strategy passes cheaply.
        is_cancelled = plan.cancel.is_set
        push_text = decoder.push
        stops = bool(plan.stop)
        wanted = plan.alternatives
        limit = plan.max_new_tokens
        keep_token, keep_logprob, keep_text = token_ids.append, logprobs.append, texts.append
        texts_of: dict[int, str] = {}  # each alternative's text, looked up once

        def text_of(token: int) -> str:
            text = texts_of[token] = token_text(token)
            return text

        try:
            while True:
                if is_cancelled():
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
                        n_best = [final_beam(tokenizer, h) for h in item.hypotheses]
                        continue
                    if not isinstance(item, Choice):
                        reason = "error"
                        error = f"strategy {name!r} yielded {type(item).__name__}, not a Choice"
                        break
                token = item.token_id
                if type(token) is not int:
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
                logprob = item.logprob
                if not math.isfinite(logprob) or token in never:  # a banned token
                    if chain.exhausted:
                        reason = NO_ALLOWED_TOKEN
                    else:
                        reason = "error"
                        error = f"strategy {name!r} chose token {token}, which is banned"
                    break
                if token == eos_id:
                    reason = "eos"
                    break
                keep_token(token)
                logprob = float(logprob)
                keep_logprob(logprob)
                alternatives = item.alternatives
                event = TokenEvent(
                    token,
                    push_text(token),
                    float(item.prob),
                    logprob,
                    tuple(
                        Alternative(int(i), texts_of.get(i) or text_of(int(i)), float(p))
                        for i, p in alternatives[:wanted]
                    )
                    if alternatives and wanted
                    else (),
                    len(token_ids) - 1,
                )
                if not stops:
                    keep_text(event.text)
                    yield event
                else:
                    for out in stopper.push(event):
                        keep_text(out.text)
                        yield out
                    if stopper.hit:
                        reason = "stop"
                        break
                if len(token_ids) >= limit:
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
            final_state = _final_state(ctx.session, start, token_ids, len(plan.reply_prefix))
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


def _final_state(session: Session, start: Session, token_ids: list[int], skip: int = 0) -> State:
    """The state after prompt + reply: the strategy's own row when it matches, else re-read.

    ``skip``: the reply's first tokens, read before ``start`` (a branch's kept tokens).
    """
    done = session.generated[:, skip:]
    if session.rows >= 1 and done.shape[1] == len(token_ids) and done[0].tolist() == token_ids:
        return session.state(0)
    fresh = start.select([0])
    if token_ids:
        fresh.extend(np.asarray([token_ids], dtype=np.int64))
    return fresh.state(0)
