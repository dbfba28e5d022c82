"""The demo engine: a scripted stand-in model, so the chat can be tried and tested without a file.

Deterministic words; a state that counts the characters fed so far. Its strategies and options are
the real plugin registry's (built-ins only), so they cannot drift from what a real model offers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from termlm.conversation.engine import ModelInfo, RegistryOptions
from termlm.errors import ModelFileError

if TYPE_CHECKING:
    from termlm.decoding.events import Event
    from termlm.decoding.trace import Trace
    from termlm.runtime.types import State


FAKE_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "bold",
    "kings",
    "sing",
    "of",
    "old",
    "roads",
    "and",
    "quiet",
    "rivers",
    "under",
    "pale",
    "stars",
]


@dataclass
class FakeEngine(RegistryOptions):
    """A scripted engine: deterministic words, a state that counts the characters fed so far.

    The reply's first word depends on the state, so a test can tell whether a conversation was
    continued from a stored state. ``calls`` records every generate call. ``gate``, when given,
    holds each token until it is set (or the reply is cancelled), for tests of stopping;
    ``load_gate`` holds the loading of a model the same way.
    """

    model_names: tuple[str, ...] = ("tiny-char", "tiny-word")
    reply_words: int = 6
    delay: float = 0.0
    gate: threading.Event | None = None
    hold_after: int = 0  # the gate holds tokens from this index on (the first ones flow)
    line_breaks: bool = True  # False: a blank line cannot be written (like a word model)
    fail_load: frozenset[str] = frozenset()
    load_gate: threading.Event | None = None  # when given, load() waits for it
    seconds_per_token: float | None = None  # when given, the reported time (steady measures)
    calls: list[dict[str, Any]] = field(default_factory=list)
    current: ModelInfo | None = None
    plugins_dirs: tuple[Path, ...] = ()  # extra plugin folders (a test's throwaway strategies)
    _registry: Any = field(default=None, repr=False)

    @property
    def registry(self) -> Any:
        """The real plugin registry (built-ins and ``plugins_dirs``; nothing installed)."""
        if self._registry is None:
            from termlm.decoding import build_plugin_manager

            self._registry = build_plugin_manager(
                plugins_dirs=self.plugins_dirs, entry_points=False, user_dir=False
            )
        return self._registry

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=name,
                arch="lstm" if i % 2 == 0 else "gru",
                level="char" if "char" in name else "word",
                val_loss=1.5 + 0.25 * i,
                sha256=hashlib.sha256(name.encode()).hexdigest(),
                extras=("attention", "hidden"),
                context=FAKE_CONTEXT,
            )
            for i, name in enumerate(self.model_names)
        ]

    def load(self, name: str | None) -> ModelInfo:
        if self.load_gate is not None:
            self.load_gate.wait(30)
        infos = self.models()
        chosen = infos[0] if name is None else next((m for m in infos if m.name == name), None)
        if chosen is None or chosen.name in self.fail_load:
            raise ModelFileError(
                f"cannot load model {name!r}", "pick another one with termlm chat MODEL"
            )
        self.current = chosen
        return chosen

    def generate(
        self,
        prompt: str | Sequence[int],
        *,
        strategy: str,
        options: Mapping[str, Any],
        max_new_tokens: int,
        stop: Sequence[str] = (),
        seed: int | None = None,
        state: State | None = None,
        cancel: threading.Event | None = None,
        reply_prefix: Sequence[int] = (),
    ) -> Iterator[Event]:
        self.validate(strategy, options)  # eager, like the real generate
        if self.current is None:
            raise ModelFileError("no model is loaded")
        text = prompt if isinstance(prompt, str) else fake_decode(prompt)
        text += fake_decode(reply_prefix)
        self.calls.append(
            {
                "prompt": prompt,
                "state": state,
                "strategy": strategy,
                "seed": seed,
                "reply_prefix": list(reply_prefix),
            }
        )
        return self._stream(text, strategy, max_new_tokens, tuple(stop), seed, state, cancel)

    def _stream(
        self,
        prompt: str,
        strategy: str,
        max_new_tokens: int,
        stop: tuple[str, ...],
        seed: int | None,
        state: State | None,
        cancel: threading.Event | None,
    ) -> Iterator[Event]:
        import numpy as np

        from termlm.decoding.events import (
            Beam,
            BeamsEvent,
            DoneEvent,
            GenerationResult,
            TokenEvent,
        )

        start = time.perf_counter()
        seen = int(state["seen"][0, 0]) if state is not None else 0
        seen += len(prompt)
        offset = seen + (seed or 0)
        words = [(offset + i) % len(FAKE_WORDS) for i in range(self.reply_words)]
        pieces = [" " + FAKE_WORDS[w] for w in words]
        if "\n\n" in stop:
            pieces.append("\n\n")
            words.append(FAKE_NEWLINE_ID)
        text, ids, reason, error = "", [], "length", None
        events: list[TokenEvent] = []
        beam = strategy == "beam"
        for index, piece in enumerate(pieces[:max_new_tokens]):
            if self.gate is not None and index >= self.hold_after:
                while not self.gate.wait(0.01):
                    if cancel is not None and cancel.is_set():
                        break
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            if strategy == "explode" and index == 2:
                reason, error = "error", "plugin 'explode' failed: boom"
                break
            if self.delay:
                time.sleep(self.delay)
            ids.append(words[index])
            if any(s in text + piece for s in stop):  # like the real loop: the stop is not shown
                reason = "stop"
                break
            text += piece
            event = fake_token_event(words[index], piece, index)
            if beam:  # like beam search: live beams every step, the text settles at the end
                events.append(event)
                yield BeamsEvent(step=index, beams=fake_beams(text, len(ids)))
            else:
                yield event
        yield from events
        seen += len(text)
        new_state = {"seen": np.array([[seen]], dtype=np.int64)}
        n_best = list(fake_beams(text, len(ids))) if beam else []
        yield DoneEvent(
            GenerationResult(
                text=text,
                token_ids=ids,
                logprobs=[ev_logprob(w) for w in ids],
                stop_reason=reason,
                seconds=(
                    time.perf_counter() - start
                    if self.seconds_per_token is None
                    else self.seconds_per_token * max(len(ids), 1)
                ),
                state=new_state,
                error=error,
                n_best=[Beam(b.text, b.score, b.token_ids, True) for b in n_best],
            )
        )

    # --- the fake's vocabulary: FAKE_WORDS, one token per word

    def encode(self, text: str) -> list[int]:
        if not self.line_breaks:  # like a word model: line breaks are not in the vocabulary
            return fake_encode(text)
        ids: list[int] = []
        for k, part in enumerate(text.split("\n\n")):
            ids += ([FAKE_NEWLINE_ID] if k else []) + fake_encode(part)
        return ids

    def token_text(self, token_id: int) -> str:
        return fake_token_text(token_id)

    def replay(
        self, prompt: str | Sequence[int], token_ids: Sequence[int], *, state: State | None = None
    ) -> State:
        """The fake's state after reading: the count of characters fed, as ``generate`` keeps."""
        import numpy as np

        text = prompt if isinstance(prompt, str) else fake_decode(prompt)
        seen = int(state["seen"][0, 0]) if state is not None else 0
        seen += len(text) + len(fake_decode(token_ids))
        return {"seen": np.array([[seen]], dtype=np.int64)}

    def unknown_spans(self, text: str) -> list[tuple[int, int]]:
        import re

        known = set(FAKE_WORDS)
        return [
            (m.start(), m.end())
            for m in re.finditer(r"\S+", text)
            if m.group().lower() not in known
        ]

    def trace(
        self,
        prompt: str | Sequence[int],
        token_ids: Sequence[int],
        *,
        state: State | None = None,
        step_by_step: bool = True,
    ) -> Trace:
        """Made-up but steady measures: attention favours a few earlier words, 8 hidden units."""
        import numpy as np

        from termlm.decoding.trace import Trace

        before = fake_encode(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        history = before + [int(i) for i in token_ids]
        start = len(before)
        n = len(token_ids)
        surprisal = np.array([-ev_logprob(int(t)) for t in token_ids], dtype=np.float32)
        rows: list[np.ndarray | None] = []
        froms: list[int] = []
        for i in range(n):
            position = start + i - 1  # the token read just before token i
            if position < 0:
                rows.append(None)
                froms.append(0)
                continue
            weights = np.array(
                [1.0 + ((history[j] * 7 + i) % 5) ** 2 for j in range(position + 1)],
                dtype=np.float32,
            )
            rows.append((weights / weights.sum()).astype(np.float16))
            froms.append(0)
        units = np.arange(8, dtype=np.float32)
        hidden = (
            np.stack(
                [np.sin(units * 0.7 + history[start + i] * 0.3 + i * 0.2) for i in range(n)]
            ).astype(np.float16)
            if n
            else None
        )
        return Trace(
            history=history,
            start=start,
            surprisal=surprisal,
            entropy=np.array([1.0 + (int(t) % 3) * 0.5 for t in token_ids], dtype=np.float32),
            top=[[(a.token_id, a.prob) for a in fake_alternatives(int(t))] for t in token_ids],
            attention=rows if any(r is not None for r in rows) else [],
            attention_from=froms,
            hidden=hidden,
        )


FAKE_NEWLINE_ID = len(FAKE_WORDS)
FAKE_CONTEXT = 64  # words
FAKE_UNK_ID = len(FAKE_WORDS) + 1
FAKE_PROBS = (0.92, 0.61, 0.34, 0.12, 0.78, 0.45, 0.05)


def fake_prob(token_id: int) -> float:
    return FAKE_PROBS[token_id % len(FAKE_PROBS)]


def ev_logprob(token_id: int) -> float:
    import math

    return math.log(fake_prob(token_id))


def fake_token_text(token_id: int) -> str:
    if token_id == FAKE_NEWLINE_ID:
        return "\n\n"
    if 0 <= token_id < len(FAKE_WORDS):
        return " " + FAKE_WORDS[token_id]
    return "<unk>"


def fake_encode(text: str) -> list[int]:
    index = {word: i for i, word in enumerate(FAKE_WORDS)}
    return [index.get(word.lower(), FAKE_UNK_ID) for word in text.split()]


def fake_decode(ids: Sequence[int]) -> str:
    return "".join(fake_token_text(int(i)) for i in ids)


def fake_alternatives(token_id: int) -> tuple[Any, ...]:
    """The chosen word and three others, with probabilities that sum below one."""
    from termlm.decoding.events import Alternative

    chosen = fake_prob(token_id)
    rest = 1.0 - chosen
    others = [(token_id + k) % len(FAKE_WORDS) for k in (3, 5, 11)]
    probs = [rest * 0.5, rest * 0.3, rest * 0.1]
    pairs = sorted([(chosen, token_id), *zip(probs, others, strict=True)], reverse=True)
    return tuple(Alternative(t, fake_token_text(t), p) for p, t in pairs)


def fake_token_event(token_id: int, piece: str, index: int) -> Any:
    from termlm.decoding.events import TokenEvent

    prob = fake_prob(token_id)
    return TokenEvent(
        token_id=token_id,
        text=piece,
        prob=prob,
        logprob=ev_logprob(token_id),
        alternatives=fake_alternatives(token_id),
        index=index,
    )


def fake_beams(text: str, length: int) -> tuple[Any, ...]:
    """Three made-up beams: the reply so far and two that differ in their last word."""
    from termlm.decoding.events import Beam

    words = text.split()
    variants = [text]
    for shift in (1, 2):
        if words:
            last = FAKE_WORDS[(FAKE_WORDS.index(words[-1]) + shift) % len(FAKE_WORDS)]
            variants.append(" " + " ".join([*words[:-1], last]))
    return tuple(
        Beam(text=v, score=-0.4 * (k + 1) - 0.05 * length, token_ids=tuple(fake_encode(v)))
        for k, v in enumerate(variants)
    )
