"""The seam between the chat and a model: what the app needs, a real engine and a scripted fake.

The app only talks to an ``Engine``. ``OnnxEngine`` wraps the runtime (model registry, onnxruntime
model) and the decoding plugins; ``FakeEngine`` replays a deterministic script so the app can be
tested and demonstrated without a model file. Every method except ``load`` and ``generate`` is cheap
and may be called from the UI thread; ``load`` and ``generate`` run in worker threads.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from termlm.errors import ModelFileError, PluginError

if TYPE_CHECKING:
    from termlm.decoding.events import Event
    from termlm.decoding.trace import Trace
    from termlm.runtime.types import State


@dataclass(frozen=True)
class ModelInfo:
    """One model a user can pick."""

    name: str
    arch: str
    level: str
    val_loss: float | None = None
    path: str = ""
    sha256: str = ""
    error: str | None = None  # why the file cannot be used, if it cannot
    extras: tuple[str, ...] = ()  # what the model shows of its inside: "attention", "hidden"
    init_from: str | None = None  # the model it was fine-tuned from

    def label(self) -> str:
        if self.error:
            return f"{self.name} · unusable"
        loss = "?" if self.val_loss is None else f"{self.val_loss:.3f}"
        parent = f" · from {self.init_from}" if self.init_from else ""
        return f"{self.name} · {self.arch} {self.level} · {loss}{parent}"


class OptionLike(Protocol):
    """The shape of a decoding option (``termlm.decoding.OptionSpec``), read by the form."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> type: ...
    @property
    def default(self) -> Any: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def choices(self) -> tuple[Any, ...] | None: ...
    @property
    def help(self) -> str: ...


@dataclass(frozen=True)
class Option:
    """A plain option description, with the same fields as the decoding ``OptionSpec``."""

    name: str
    type: type
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""


class Engine(Protocol):
    """What the chat needs from a model and its decoding strategies."""

    def models(self) -> list[ModelInfo]:
        """Every model a user can pick."""
        ...

    def load(self, name: str | None) -> ModelInfo:
        """Load a model by name (None: the default one). Slow: call it in a worker thread."""
        ...

    def strategies(self) -> list[str]: ...

    def options_for(self, strategy: str) -> Sequence[OptionLike]: ...

    def validate(self, strategy: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Coerce and check option values; raise a TermlmError naming the allowed range."""
        ...

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
    ) -> Iterator[Event]:
        """Stream the reply to ``prompt`` (text or token ids) fed on top of ``state``.

        Always ends with a DoneEvent.
        """
        ...

    def encode(self, text: str) -> list[int]:
        """The loaded model's token ids for ``text``."""
        ...

    def token_text(self, token_id: int) -> str:
        """How one token of the loaded model is shown."""
        ...

    def unknown_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of ``text`` the loaded model has never seen."""
        ...

    def trace(
        self,
        prompt: str | Sequence[int],
        token_ids: Sequence[int],
        *,
        state: State | None = None,
        step_by_step: bool = True,
    ) -> Trace:
        """Read ``prompt`` then ``token_ids`` again and keep what the model saw at each new token.

        Slow-ish (one model call per token): call it in a worker thread.
        """
        ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------- real


class OnnxEngine:
    """The real engine: exported ONNX models run by onnxruntime, decoded by the plugins."""

    def __init__(
        self, plugins_dirs: Sequence[Path] = (), *, entry_points: bool = True, user_dir: bool = True
    ) -> None:
        self._plugins_dirs = tuple(plugins_dirs)
        self._plugin_sources = {"entry_points": entry_points, "user_dir": user_dir}
        self._registry: Any = None
        self._model: Any = None
        self._info: ModelInfo | None = None
        self._lock = threading.Lock()
        # (name, thread, outcome) of a load started early by prefetch()
        self._prefetched: tuple[str | None, threading.Thread, dict[str, Any]] | None = None

    @property
    def registry(self) -> Any:
        with self._lock:
            if self._registry is None:
                from termlm.decoding import build_plugin_manager

                self._registry = build_plugin_manager(
                    plugins_dirs=self._plugins_dirs, **self._plugin_sources
                )
            return self._registry

    def models(self) -> list[ModelInfo]:
        from termlm.runtime.registry import find_models

        return [_info_from_entry(entry) for entry in find_models()]

    def prefetch(self, name: str | None) -> None:
        """Start loading ``name`` in a background thread now; ``load(name)`` takes it over.

        The app calls this before its screen is built, so the model loads while the interface
        starts instead of after it.
        """
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = self._open(name)
            except BaseException as exc:  # handed to load(), which raises it
                outcome["error"] = exc

        thread = threading.Thread(target=run, name="model-prefetch", daemon=True)
        self._prefetched = (name, thread, outcome)
        thread.start()

    def load(self, name: str | None) -> ModelInfo:
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == name:
            _, thread, outcome = prefetched
            thread.join()
            if "error" in outcome:
                raise outcome["error"]
            model, info = outcome["value"]
        else:
            model, info = self._open(name)
        self._model, self._info = model, info
        return info

    def _open(self, name: str | None) -> tuple[Any, ModelInfo]:
        """Open a model file (slow: off the UI thread); the engine's model is left as it is."""
        from termlm.runtime.onnx_model import load_model
        from termlm.runtime.registry import resolve_model

        self.registry  # noqa: B018 - build the plugins while we are off the UI thread
        path = Path(resolve_model(name))
        model = load_model(path)
        meta = model.meta
        card = getattr(meta, "card", None) or {}
        val_loss = (
            card.get("val_loss") if isinstance(card, dict) else getattr(card, "val_loss", None)
        )
        info = ModelInfo(
            name=str(meta.name),
            arch=str(meta.config.arch),
            level=str(meta.level),
            val_loss=None if val_loss is None else float(val_loss),
            path=str(path),
            sha256=str(getattr(meta, "sha256", "") or file_sha256(path)),
            extras=tuple(str(name) for name in meta.extras) if meta.stateful else (),
        )
        return model, info

    def _loaded(self) -> Any:
        if self._model is None:
            raise ModelFileError("no model is loaded", "pick a model in the side panel (F2)")
        return self._model

    def encode(self, text: str) -> list[int]:
        return list(self._loaded().tokenizer.encode(text)) if text else []

    def token_text(self, token_id: int) -> str:
        return str(self._loaded().tokenizer.token_text(int(token_id)))

    def unknown_spans(self, text: str) -> list[tuple[int, int]]:
        return list(self._loaded().tokenizer.unknown_spans(text))

    def trace(
        self,
        prompt: str | Sequence[int],
        token_ids: Sequence[int],
        *,
        state: State | None = None,
        step_by_step: bool = True,
    ) -> Trace:
        from termlm.decoding.trace import trace_tokens

        model = self._loaded()
        ids = self.encode(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        return trace_tokens(model, ids, token_ids, state=state, step_by_step=step_by_step)

    def strategies(self) -> list[str]:
        return list(self.registry.strategy_names())

    def options_for(self, strategy: str) -> Sequence[OptionLike]:
        return list(self.registry.options_for(strategy))

    def validate(self, strategy: str, values: Mapping[str, Any]) -> dict[str, Any]:
        from termlm.decoding import validate_options

        return dict(validate_options(self.registry, strategy, values))

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
    ) -> Iterator[Event]:
        from termlm.decoding import generate

        model = self._loaded()
        return generate(
            model,
            model.tokenizer,
            prompt,
            registry=self.registry,
            strategy=strategy,
            options=dict(options),
            max_new_tokens=max_new_tokens,
            stop=tuple(stop),
            seed=seed,
            state=state,
            cancel=cancel,
        )


def _info_from_entry(entry: Any) -> ModelInfo:
    """Read a registry entry (attribute or mapping style) into a ModelInfo."""

    def get(key: str, default: Any = None) -> Any:
        if isinstance(entry, Mapping):
            return entry.get(key, default)
        return getattr(entry, key, default)

    config = get("config")
    arch = get("arch") or (
        config.get("arch") if isinstance(config, Mapping) else getattr(config, "arch", "?")
    )
    card = get("card") or {}
    val_loss = get("val_loss")
    if val_loss is None:
        val_loss = card.get("val_loss") if isinstance(card, Mapping) else None
    parent = get("init_from")
    return ModelInfo(
        name=str(get("name", "?")),
        arch=str(arch or "?"),
        level=str(get("level", "?")),
        val_loss=None if val_loss is None else float(val_loss),
        path=str(get("path", "")),
        sha256=str(get("sha256", "") or ""),
        error=get("error"),
        init_from=str(parent["name"]) if isinstance(parent, Mapping) and "name" in parent else None,
    )


# --------------------------------------------------------------------------------------- fake

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

FAKE_STRATEGIES: dict[str, tuple[Option, ...]] = {
    "greedy": (),
    "sample": (
        Option("temperature", float, 1.0, 0.0, 10.0, help="softer (>1) or sharper (<1)"),
        Option("top_k", int, 0, 0, 1000, help="keep the k likeliest tokens (0: all)"),
    ),
    "beam": (
        Option("beams", int, 4, 1, 16, help="beams kept at each step"),
        Option("early_stopping", bool, True, help="stop when every beam has finished"),
        Option("length_norm", str, "average", choices=("average", "none", "gnmt"), help="score"),
    ),
    "explode": (),
}
FAKE_PROCESSORS: tuple[Option, ...] = (
    Option("repetition_penalty", float, 1.0, 1.0, 10.0, help="1.0: off"),
)


@dataclass
class FakeEngine:
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
    fail_load: frozenset[str] = frozenset()
    load_gate: threading.Event | None = None  # when given, load() waits for it
    seconds_per_token: float | None = None  # when given, the reported time (steady measures)
    calls: list[dict[str, Any]] = field(default_factory=list)
    current: ModelInfo | None = None

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=name,
                arch="lstm" if i % 2 == 0 else "gru",
                level="char" if "char" in name else "word",
                val_loss=1.5 + 0.25 * i,
                sha256=hashlib.sha256(name.encode()).hexdigest(),
                extras=("attention", "hidden"),
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

    def strategies(self) -> list[str]:
        return list(FAKE_STRATEGIES)

    def options_for(self, strategy: str) -> Sequence[OptionLike]:
        if strategy not in FAKE_STRATEGIES:
            raise PluginError(f"unknown strategy {strategy!r}")
        return FAKE_STRATEGIES[strategy] + FAKE_PROCESSORS

    def validate(self, strategy: str, values: Mapping[str, Any]) -> dict[str, Any]:
        specs = {spec.name: spec for spec in self.options_for(strategy)}
        out: dict[str, Any] = {name: spec.default for name, spec in specs.items()}
        for key, raw in values.items():
            spec = specs.get(key)
            if spec is None:
                valid = ", ".join(specs) or "none"
                raise PluginError(f"unknown option {key!r} for {strategy}; valid: {valid}")
            out[key] = _coerce(spec, raw)
        return out

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
    ) -> Iterator[Event]:
        self.validate(strategy, options)  # eager, like the real generate
        if self.current is None:
            raise ModelFileError("no model is loaded")
        text = prompt if isinstance(prompt, str) else fake_decode(prompt)
        self.calls.append({"prompt": prompt, "state": state, "strategy": strategy, "seed": seed})
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
            if self.gate is not None:
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
        return fake_encode(text)

    def token_text(self, token_id: int) -> str:
        return fake_token_text(token_id)

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


def _coerce(spec: OptionLike, raw: Any) -> Any:
    """Turn a raw value (maybe a string from a form) into the option's type, checking its range."""
    kind = spec.type
    try:
        if kind is bool:
            if isinstance(raw, str):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(raw)
                value: Any = raw.lower() in ("true", "1", "yes", "on")
            else:
                value = bool(raw)
        else:
            value = kind(raw)
    except (TypeError, ValueError):
        raise PluginError(f"{spec.name} must be {kind.__name__}, got {raw!r}") from None
    if spec.choices is not None and value not in spec.choices:
        raise PluginError(
            f"{spec.name} must be one of {', '.join(map(str, spec.choices))}, got {value!r}"
        )
    low, high = spec.min, spec.max
    if kind in (int, float) and (
        (low is not None and value < low) or (high is not None and value > high)
    ):
        raise PluginError(f"{spec.name} must be in [{low}, {high}], got {value}")
    return value
