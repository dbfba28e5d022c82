"""The chat screen's model loading and option form: a load in a worker, the pickers filled after.

A mixin of ``ChatScreen`` (kept apart so each file stays readable); it reads and sets the screen's
``core`` (model, settings, engine) and its side panel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work

from termlm.errors import TermlmError
from termlm.tui.panel import SidePanel
from termlm.tui.threads import hand_to_ui

if TYPE_CHECKING:
    from termlm.conversation.chat import ChatCore
    from termlm.conversation.engine import ModelInfo


class ModelLoading:
    """Loading a model, listing models and strategies, and the strategy's option fields."""

    core: ChatCore
    model_loading: bool
    send_when_ready: bool
    previous_model: ModelInfo | None
    gone_noticed: set[str]

    if TYPE_CHECKING:  # provided by the screen

        def refresh_status(self, activity: str = "") -> None: ...
        def persist(self) -> None: ...
        def new_chat(self) -> None: ...
        def send_queued(self) -> None: ...
        def warn_dialogue(self) -> None: ...

    def start_load(self, name: str | None, fallback: bool = False) -> None:
        core = self.core
        if core.model is not None:
            self.previous_model = core.model  # still in the engine's memory if the load fails
        self.model_loading = True
        core.model = None
        self.refresh_status("loading the model…")
        self._load_worker(name, fallback)

    @work(thread=True, exclusive=True, group="load")
    def _load_worker(self, name: str | None, fallback: bool) -> None:
        engine = self.core.engine
        try:
            try:
                info = engine.load(name)
            except TermlmError:
                if not fallback or name is None:
                    raise
                info = engine.load(None)  # a remembered model that is gone: the default one
            try:
                models = engine.models()
            except Exception:  # a listing that fails must not undo a load that worked
                models = [info]
            strategies = engine.strategies()
        except Exception as exc:
            hand_to_ui(self.app, self._load_failed, name, exc)  # type: ignore[attr-defined]
            return
        hand_to_ui(self.app, self._loaded, info, models, strategies)  # type: ignore[attr-defined]

    def _load_failed(self, name: str | None, exc: Exception) -> None:
        """A load that failed leaves the engine's model as it was: keep using it if we may."""
        self.model_loading = False
        core = self.core
        what = name or "the default model"
        message = str(exc) if isinstance(exc, TermlmError) else f"{type(exc).__name__}: {exc}"
        previous = self.previous_model
        made_with = core.chat_model
        keep = previous is not None and (
            not core.conversation.messages
            or made_with is None
            or made_with.sha256 == previous.sha256
        )
        panel = self.query_one(SidePanel)  # type: ignore[attr-defined]
        if keep and previous is not None:
            core.model = previous
            core.settings.model = previous.name
            self.persist()
            panel.select_model(previous.name)
            advice = f"Still using {previous.name} (loaded in memory)."
        else:
            self.send_when_ready = False
            panel.select_model(None)
            advice = "Pick another model in the side panel (F2)."
        self.notify(  # type: ignore[attr-defined]
            f"{message}\n{advice}", title=f"cannot load {what}", severity="error", timeout=10
        )
        self.refresh_status()
        if keep:
            self.send_queued()

    async def _loaded(
        self, info: ModelInfo, models: list[ModelInfo], strategies: list[str]
    ) -> None:
        self.model_loading = False
        core = self.core
        core.model = info
        settings = core.settings
        if settings.strategy not in strategies and strategies:
            settings.strategy = "sample" if "sample" in strategies else strategies[0]
        panel = self.query_one(SidePanel)  # type: ignore[attr-defined]
        panel.show_models(models, info.name)
        panel.show_strategies(strategies, settings.strategy)
        panel.show_presets(list(settings.presets))
        await self.show_option_fields()
        made_with = core.chat_model
        if core.conversation.messages and made_with and made_with.sha256 != info.sha256:
            self.notify(  # type: ignore[attr-defined]
                f"this chat was made with {made_with.name}; a new chat starts with {info.name}",
                severity="warning",
            )
            self.new_chat()
        self.refresh_status()
        self.warn_dialogue()
        self.send_queued()

    async def show_option_fields(self) -> None:
        settings = self.core.settings
        try:
            specs = list(self.core.engine.options_for(settings.strategy))
        except TermlmError as exc:
            self.notify(str(exc), severity="error")  # type: ignore[attr-defined]
            specs = []
        await self.query_one(SidePanel).show_options(  # type: ignore[attr-defined]
            specs, settings.options_for(settings.strategy), self._check_option
        )

    def _check_option(self, name: str, value: Any) -> str | None:
        """The strategy's own verdict on one option value, with the others as they are."""
        strategy = self.core.settings.strategy
        values = self.known_options(strategy)
        values[name] = value
        try:
            self.core.engine.validate(strategy, values)
        except TermlmError as exc:
            return exc.message
        return None

    def known_options(self, strategy: str) -> dict[str, Any]:
        """The remembered options of a strategy that it still has."""
        names = {spec.name for spec in self.core.engine.options_for(strategy)}
        stored = self.core.settings.options_for(strategy)
        return {key: value for key, value in stored.items() if key in names}

    def reply_options(self) -> dict[str, Any] | None:
        """The options for the next reply, checked; None (and a notification) if they are bad."""
        strategy = self.core.settings.strategy
        try:
            return self.core.engine.validate(strategy, self.known_options(strategy))
        except TermlmError as exc:
            self.notify(str(exc), title="bad decoding options", severity="error")  # type: ignore[attr-defined]
            return None

    @work(thread=True, exclusive=True, group="models")
    def list_models(self) -> None:
        """Read the model files again for the picker (files come and go while the chat runs)."""
        try:
            models = self.core.engine.models()
        except Exception as exc:
            message = str(exc) if isinstance(exc, TermlmError) else f"{type(exc).__name__}: {exc}"
            hand_to_ui(
                self.app,  # type: ignore[attr-defined]
                self.notify,  # type: ignore[attr-defined]
                message,
                title="cannot list the models",
                severity="warning",
            )
            return
        hand_to_ui(self.app, self._show_models, models)  # type: ignore[attr-defined]

    def _show_models(self, models: list[ModelInfo]) -> None:
        """Fill the picker; the model in use stays in it even when its file is gone."""
        current = self.core.model
        if current is not None:
            entry = next((m for m in models if m.name == current.name), None)
            if entry is None or entry.error is not None:
                models = [current, *(m for m in models if m.name != current.name)]
                if current.name not in self.gone_noticed:
                    self.gone_noticed.add(current.name)
                    what = "is gone" if entry is None else "cannot be read any more"
                    self.notify(  # type: ignore[attr-defined]
                        f"the file of {current.name} {what}; it stays loaded for this session,"
                        " but cannot be loaded again once you switch to another model",
                        title="model file changed",
                        severity="warning",
                        timeout=10,
                    )
        self.query_one(SidePanel).show_models(models, current.name if current else None)  # type: ignore[attr-defined]
