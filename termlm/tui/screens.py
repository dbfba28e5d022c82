"""Modal screens: help, the list of saved chats, and the rename prompt."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from termlm.conversation.store import ChatStore, ChatSummary
from termlm.tui.safetext import safe_line

HELP = """\
# termlm chat

Talk to a small language model, offline. Type a prompt and press **Enter**.

{keys}

## Modes

- **continue**: what you type is continued as text.
- **dialogue**: the play format (`NAME:` then the speech, then a blank line). You speak as a
  character; the model answers as the next speaker and stops at the end of the speech.

Settings in the side panel apply to the next reply and are remembered. Every chat is saved as you
go, with the model state after each message, so undo, regenerate and reopening are instant.
"""


class HelpScreen(ModalScreen[None]):
    """Every key, and what the modes mean."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown

        rows = "\n".join(f"- `{key}`: {what}" for key, what in self.keys)
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP.format(keys=rows))
            yield Label("Esc closes", classes="hint")


class RenameScreen(ModalScreen[str | None]):
    """Ask for a chat's new title."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.old_title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="rename-box"):
            yield Label("New title (Enter saves, Esc cancels)")
            yield Input(value=self.old_title, id="rename-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        title = event.value.strip()
        self.dismiss(title or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


class ChatsScreen(ModalScreen[int | None]):
    """Saved chats: Enter opens, r renames, d then y deletes, Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back"),
        Binding("r", "rename", "Rename"),
        Binding("d,delete", "delete", "Delete"),
        Binding("y", "confirm", "Yes, delete", show=False),
    ]

    def __init__(self, store: ChatStore, delete: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.store = store
        self.delete = delete or store.delete_chat  # the chat screen's: it knows the open chat
        self.chats: list[ChatSummary] = []
        self.doomed: ChatSummary | None = None  # asked to delete, waiting for "y"

    def compose(self) -> ComposeResult:
        with Vertical(id="chats-box"):
            yield Label("Saved chats  (Enter open · r rename · d delete · Esc back)")
            yield OptionList(id="chat-list")
            yield Label("", id="chats-confirm", classes="hint")

    def on_mount(self) -> None:
        self.refresh_list()

    def refresh_list(self) -> None:
        self.chats = self.store.list_chats()
        options = self.query_one("#chat-list", OptionList)
        options.clear_options()
        for chat in self.chats:
            model = chat.model_name or "?"
            count = "1 message" if chat.messages == 1 else f"{chat.messages} messages"
            text = f"{chat.title}  ·  {chat.mode} · {model} · {count} · {_when(chat.updated)}"
            options.add_option(Option(Text(safe_line(text)), id=str(chat.id)))
        if not self.chats:
            options.add_option(Option("no saved chats yet", disabled=True))
        else:
            options.highlighted = 0
        options.focus()

    def _selected(self) -> ChatSummary | None:
        index = self.query_one("#chat-list", OptionList).highlighted
        if index is None or index >= len(self.chats):
            return None
        return self.chats[index]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.dismiss(int(event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_rename(self) -> None:
        chat = self._selected()
        if chat is None:
            return

        def done(title: str | None) -> None:
            if title:
                self.store.rename_chat(chat.id, title)
                self.refresh_list()

        self.app.push_screen(RenameScreen(chat.title), done)

    def action_delete(self) -> None:
        """Ask first: the chat and every branch of it go for good."""
        chat = self._selected()
        if chat is None:
            return
        self.doomed = chat
        self.query_one("#chats-confirm", Label).update(
            Text(f"Delete {safe_line(chat.title)!r} for good? y deletes, any other key keeps it")
        )

    def action_confirm(self) -> None:
        chat, self.doomed = self.doomed, None
        self.query_one("#chats-confirm", Label).update("")
        if chat is None:
            return
        self.delete(chat.id)
        self.notify(f"deleted {safe_line(chat.title)!r}")
        self.refresh_list()

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        if self.doomed is not None and key not in ("y", "d", "delete"):
            self.doomed = None
            self.query_one("#chats-confirm", Label).update("")
