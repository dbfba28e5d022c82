"""The chat application: holds the engine, the chat store and the settings; shows ChatScreen."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from termlm.conversation.engine import Engine
from termlm.conversation.settings import Settings, load_settings, save_settings
from termlm.conversation.store import ChatStore
from termlm.tui.chat_screen import ACTION_HELP, ChatScreen


class ChatApp(App[None]):
    """``termlm chat``. Give it an engine (real or fake); everything else has defaults."""

    CSS_PATH = "chat.tcss"
    TITLE = "termlm chat"

    def __init__(
        self,
        engine: Engine,
        *,
        model: str | None = None,
        store: ChatStore | None = None,
        settings: Settings | None = None,
        settings_path: Path | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.requested_model = model
        self.store = store or ChatStore()
        self.settings_path = settings_path
        self.settings = settings if settings is not None else load_settings(settings_path)
        self.clock = clock
        prefetch = getattr(engine, "prefetch", None)
        if callable(prefetch):  # load the model while the interface starts
            prefetch(model or self.settings.model)

    def get_default_screen(self) -> Screen:
        return ChatScreen()

    @property
    def chat(self) -> ChatScreen:
        """The main screen (wherever the screen stack is)."""
        for screen in self.screen_stack:
            if isinstance(screen, ChatScreen):
                return screen
        raise LookupError("the chat screen is not running")

    def on_mount(self) -> None:
        if self.settings.theme and self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: object) -> None:
        self.settings.theme = self.theme
        self.persist_settings()

    def persist_settings(self) -> None:
        save_settings(self.settings, self.settings_path)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        chat = self.chat
        for binding in ChatScreen.BINDINGS:
            if not isinstance(binding, Binding):
                continue
            action = binding.action
            method = getattr(chat, f"action_{action}", None)
            if method is not None:
                yield SystemCommand(
                    binding.description,
                    f"{_sentence(ACTION_HELP.get(action, binding.description))}  [{binding.key}]",
                    method,
                )
        for name, preset in self.settings.presets.items():
            strategy = preset.get("strategy", "?") if isinstance(preset, dict) else "?"
            yield SystemCommand(
                f"Preset: {name}",
                f"Decode the next replies with the arena preset {name!r} ({strategy})",
                partial(chat.pick_preset, name),
            )

    def on_unmount(self) -> None:
        self.store.close()


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
