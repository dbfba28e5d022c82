"""The chat screen's actions on the conversation and the app: undo, regenerate, presets, the
panel, modes, saved chats, copy, export, help.

A mixin of ``ChatScreen`` (kept apart so each file stays readable); what it changes goes through
the screen's ``core``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from termlm.conversation.tree import to_markdown
from termlm.errors import PluginError, TermlmError
from termlm.tui.keys import key_table
from termlm.tui.panel import SidePanel
from termlm.tui.screens import ChatsScreen, HelpScreen
from termlm.tui.widgets import PromptInput

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.screen import Screen

    from termlm.conversation.chat import ChatCore, Turn
    from termlm.tui.transcript import Transcript

    _Base = Screen[None]
else:
    _Base = object


class ChatActions(_Base):
    """Ctrl+Z, Ctrl+R, F2, Ctrl+T, Ctrl+O, Ctrl+N, Ctrl+Y, Ctrl+S, F1 and the presets."""

    core: ChatCore
    model_loading: bool

    if TYPE_CHECKING:  # provided by the screen and its other parts

        def refresh_status(self, activity: str = "") -> None: ...
        def persist(self) -> None: ...
        def reply_options(self) -> dict[str, Any] | None: ...
        async def show_option_fields(self) -> None: ...
        def begin_reply(
            self, turn: Turn, options: dict[str, Any], branch_at: int | None = None
        ) -> None: ...
        def _undo_last(self, restore: bool) -> None: ...
        def new_chat(self) -> None: ...
        def open_chat(self, chat_id: int | None) -> None: ...
        def delete_chat(self, chat_id: int) -> None: ...
        def warn_dialogue(self) -> None: ...
        def read_back_first(self, index: int, then: Callable[[], None], activity: str) -> bool: ...
        def update_hints(self) -> None: ...
        @property
        def transcript(self) -> Transcript: ...

    async def apply_preset(self, name: str) -> bool:
        """Make a saved preset's strategy and options the chat's (the form shows them)."""
        settings = self.core.settings
        panel = self.query_one(SidePanel)
        try:
            strategy, options, strategies = self._checked_preset(name)
        except TermlmError as exc:
            panel.show_preset(None)
            self.notify(exc.message, title="cannot use the preset", severity="error")
            return False
        settings.strategy = strategy
        settings.options[strategy] = options
        self.persist()
        panel.show_strategies(strategies, strategy)
        panel.show_preset(name)
        await self.show_option_fields()
        self.refresh_status(f"preset {name}")
        return True

    def _checked_preset(self, name: str) -> tuple[str, dict[str, Any], list[str]]:
        """(strategy, options, installed strategies) of a preset; TermlmError if unusable."""
        engine = self.core.engine
        preset = self.core.settings.presets.get(name)
        strategy = preset.get("strategy") if isinstance(preset, dict) else None
        options = preset.get("options", {}) if isinstance(preset, dict) else None
        if not isinstance(strategy, str) or not isinstance(options, dict):
            raise PluginError(
                f"the preset {name!r} is missing or damaged in chat.json; save it again (F6)"
            )
        strategies = list(engine.strategies())
        if strategy not in strategies:
            raise PluginError(
                f"the preset {name!r} uses the strategy {strategy!r}, which is not installed;"
                " install its plugin or pick another preset"
            )
        try:
            engine.validate(strategy, options)
        except TermlmError as exc:
            refused = f"the preset {name!r} has options {strategy} refuses: {exc.message}"
            raise PluginError(refused) from exc
        return strategy, dict(options), strategies

    def pick_preset(self, name: str) -> None:
        """Use a preset (from the command palette): applied after this call returns."""
        self.call_later(self.apply_preset, name)

    def action_undo(self) -> None:
        if self.core.job is not None:
            self.notify("a reply is running; Esc stops it first", severity="warning")
            return
        if self.core.conversation.last_exchange() is None:
            self.notify("nothing to undo")
            return
        self._undo_last(restore=True)
        self.refresh_status("undone")

    def action_regenerate(self) -> None:
        if self.core.job is not None:
            self.notify("a reply is running; Esc stops it first", severity="warning")
            return
        exchange = self.core.conversation.last_exchange()
        if exchange is None or exchange[1] < 0:
            self.notify("no reply to regenerate")
            return
        if self.core.model is None:
            self.notify("no model is loaded", severity="warning")
            return
        if self.read_back_first(exchange[0], self.action_regenerate, "reading back…"):
            return  # the state before the prompt is read back first; then this runs again
        found = self.core.regenerate_turn()
        if found is None:
            return
        options = self.reply_options()
        if options is None:
            return
        reply_index, turn = found
        self.begin_reply(turn, options, branch_at=reply_index)  # the old reply stays (F8)

    def action_toggle_panel(self) -> None:
        panel = self.query_one(SidePanel)
        at_bottom = self.transcript.at_bottom()
        panel.display = not panel.display
        if not panel.display:  # typing goes back to the prompt, not to a hidden field
            self.query_one(PromptInput).focus()
        self.transcript.follow(force=at_bottom)  # the transcript re-wraps to its new width
        self.core.settings.panel = bool(panel.display)
        self.persist()
        if panel.display and not self.model_loading:
            self.list_models()  # type: ignore[attr-defined]

    def action_toggle_mode(self) -> None:
        settings = self.core.settings
        settings.mode = "dialogue" if settings.mode == "continue" else "continue"
        self.query_one("#mode-select").value = settings.mode  # type: ignore[attr-defined]
        self.persist()
        self.refresh_status()
        self.notify(f"mode: {settings.mode}")
        self.warn_dialogue()

    def action_chats(self) -> None:
        self.app.push_screen(ChatsScreen(self.core.store, self.delete_chat), self.open_chat)

    def action_new_chat(self) -> None:
        self.new_chat()
        self.refresh_status("new chat")

    def action_copy_reply(self) -> None:
        reply = self.core.conversation.last_reply()
        if reply is None:
            self.notify("no reply to copy")
            return
        self.app.copy_to_clipboard(reply.text)
        self.notify("reply copied to the clipboard")

    def action_export(self) -> None:
        conversation = self.core.conversation
        if not conversation.messages:
            self.notify("nothing to export yet")
            return
        slug = re.sub(r"[^a-z0-9]+", "-", conversation.title.lower()).strip("-") or "chat"
        path = Path.cwd() / f"termlm-{conversation.chat_id}-{slug[:40]}.md"
        try:
            from termlm.atomic import atomic_write_text

            atomic_write_text(path, to_markdown(conversation))
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc}", severity="error")
            return
        self.notify(f"saved {path.name}", title="exported as Markdown")

    def on_text_area_changed(self, event: Any) -> None:
        if isinstance(event.text_area, PromptInput):
            self.update_hints()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(key_table(self.BINDINGS)))

    def action_train(self) -> None:
        from termlm.tui.train.screen import open_train_view

        open_train_view(self.app)
