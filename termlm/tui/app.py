"""The chat application: builds the conversation core (engine, store, settings); shows ChatScreen.

A fault that ends the app is reported as one short message (``fatal``), never as a traceback with
the model's arrays in it; the exit code is then 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from termlm.conversation.chat import ChatCore
from termlm.conversation.engine import Engine
from termlm.conversation.settings import Settings, load_settings, save_settings
from termlm.conversation.store import MEMORY, ChatStore
from termlm.tui.chat_screen import ChatScreen
from termlm.tui.keys import ACTION_HELP
from termlm.tui.threads import hand_to_ui

if TYPE_CHECKING:
    from termlm.tui.train.screen import TrainScreen

SWITCH_SECONDS = 0.0005  # the interpreter's thread switch interval while the chat runs


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
        remember: bool = True,
    ) -> None:
        super().__init__()
        self.remember = remember  # False (the demo): settings are not written back
        self.engine = engine
        self.requested_model = model
        self.store = store or ChatStore()
        self.settings_path = settings_path
        self.settings = settings if settings is not None else load_settings(settings_path)
        self.clock = clock
        self.core = ChatCore(engine, self.store, self.settings)
        self.fatal: str | None = None  # why the app ended, when it crashed
        self.draft = ""  # the prompt box's text when it crashed
        self._switch_interval = 0.005
        self.train_view: TrainScreen | None = None  # the Train view (F10), made when first opened
        prefetch = getattr(engine, "prefetch", None)
        if callable(prefetch):  # load the model while the interface starts
            prefetch(model or self.settings.model)

    def get_default_screen(self) -> Screen:
        return ChatScreen(
            self.core,
            requested_model=self.requested_model,
            persist=self.persist_settings,
            clock=self.clock,
        )

    @property
    def chat(self) -> ChatScreen:
        """The main screen (wherever the screen stack is)."""
        for screen in self.screen_stack:
            if isinstance(screen, ChatScreen):
                return screen
        raise LookupError("the chat screen is not running")

    def on_mount(self) -> None:
        import sys

        # The reply's thread gives the GIL up inside every model call; with the default 5 ms
        # switch interval it then waits behind the UI's drawing, at every call. Shorter turns
        # keep the reply near `termlm generate`'s speed (benchmarks/chat_speed.py).
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_SECONDS)
        if self.settings.theme and self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.store.on_problem = self._store_problem
        if self.store.problem is not None:
            self._store_problem(self.store.problem)
        self._compact_old_chats()

    def _compact_old_chats(self) -> None:
        """Chats saved by an older version hold a whole state per message: compact them in the
        background (the chat goes on meanwhile; each row changes at once or not at all)."""
        from termlm.conversation.compact import needs_compaction

        path = self.store.path
        if self.store.saving and path != MEMORY and needs_compaction(path):
            self.notify(
                "compacting the chats saved by an older version (the chat goes on meanwhile)…",
                title="saved chats",
            )
            self._compact_worker(path)

    @work(thread=True, group="compact", exit_on_error=False)
    def _compact_worker(self, path: Path) -> None:
        import sqlite3

        from termlm.conversation.compact import compact

        try:
            text, severity = compact(path).summary(), "information"
        except (sqlite3.Error, OSError, ValueError) as exc:
            text = f"cannot compact the saved chats ({exc}); they stay as they are"
            severity = "warning"
        hand_to_ui(self, self.notify, text, title="saved chats", severity=severity)

    def _store_problem(self, problem: str) -> None:
        """Said once: the chat goes on, without saving."""
        self.notify(
            f"{problem}\nThe chat goes on; this session is kept in memory only.",
            title="not saving",
            severity="warning",
            timeout=15,
        )

    def _fatal_error(self) -> None:
        """An unhandled error: keep a one-line reason (no traceback, no arrays); exit code 1."""
        import sys

        error = sys.exc_info()[1] or self._exception
        self.fatal = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        self.fatal = self.fatal.splitlines()[0][:300] if self.fatal else "unknown error"
        try:
            from termlm.tui.widgets import PromptInput

            self.draft = self.chat.query_one(PromptInput).text
        except Exception:
            self.draft = ""
        self._return_code = 1
        self._close_messages_no_wait()

    def _theme_changed(self, theme: object) -> None:
        self.settings.theme = self.theme
        self.persist_settings()

    def persist_settings(self) -> None:
        if self.remember:
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

    async def action_quit(self) -> None:
        from termlm.tui.train.screen import quit_asking

        await quit_asking(self)  # a training running: asked first, stopped cleanly

    def on_unmount(self) -> None:
        import sys

        if self.train_view is not None:
            self.train_view.close_job()  # never a training process left behind
        self.core.close()  # a reply in flight is saved as it is
        sys.setswitchinterval(self._switch_interval)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
