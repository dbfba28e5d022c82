"""The seam between the chat and a model: what the app needs, a real engine and a scripted fake.

The app only talks to an ``Engine``. ``OnnxEngine`` wraps the runtime (model registry, onnxruntime
model) and the decoding plugins; ``FakeEngine`` replays a deterministic script so the app can be
tested and demonstrated without a model file. Every method except ``load`` and ``generate`` is cheap
and may be called from the UI thread; ``load`` and ``generate`` run in worker threads.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from termlm.decoding.options import OptionSpec
from termlm.errors import ModelFileError

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
    context: int = 0  # tokens the model reads at most (0: unknown)
    init_from: str | None = None  # the model it was fine-tuned from

    def label(self) -> str:
        if self.error:
            return f"{self.name} · unusable"
        loss = "?" if self.val_loss is None else f"{self.val_loss:.3f}"
        parent = f" · from {self.init_from}" if self.init_from else ""
        return f"{self.name} · {self.arch} {self.level} · {loss}{parent}"


OptionLike = OptionSpec  # what a strategy accepts: the plugins' own typed options


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
        reply_prefix: Sequence[int] = (),
    ) -> Iterator[Event]:
        """Stream the reply to ``prompt`` (text or token ids) fed on top of ``state``.

        ``reply_prefix``: the reply's first tokens, kept from an earlier reply (a branch): read
        after the prompt and counted as reply. Always ends with a DoneEvent.
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

    def replay(
        self, prompt: str | Sequence[int], token_ids: Sequence[int], *, state: State | None = None
    ) -> State:
        """The state after ``prompt`` (one block) then ``token_ids`` one at a time, read on
        ``state``: exactly how a reply was generated, so its state comes back bit for bit.

        One model call per token: call it off the UI thread.
        """
        ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------- real


class RegistryOptions:
    """Strategies and their options, read from ``self.registry`` (the real plugin registry):
    shared by the real engine and the scripted one, so their options cannot drift."""

    registry: Any

    def strategies(self) -> list[str]:
        return list(self.registry.strategy_names())

    def options_for(self, strategy: str) -> Sequence[OptionLike]:
        return list(self.registry.options_for(strategy))

    def validate(self, strategy: str, values: Mapping[str, Any]) -> dict[str, Any]:
        from termlm.decoding import validate_options

        return dict(validate_options(self.registry, strategy, values))


class OnnxEngine(RegistryOptions):
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
            context=int(getattr(model, "context", 0) or 0),
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

    def replay(
        self, prompt: str | Sequence[int], token_ids: Sequence[int], *, state: State | None = None
    ) -> State:
        from termlm.decoding.session import start_session

        model = self._loaded()
        ids = self.encode(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        session, _ = start_session(model, ids, state)
        for token in token_ids:
            session.feed([int(token)])
        return session.state(0)

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
            reply_prefix=reply_prefix,
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
