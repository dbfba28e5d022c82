"""Small widgets of the chat: the prompt box, one message, the status line."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import Static, TextArea

NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter", "ctrl+enter")


class PromptInput(TextArea):
    """The prompt: Enter sends, Ctrl+J (or Shift/Alt+Enter) breaks the line, Up/Down recall."""

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.prompts: list[str] = []
        self._recall_index: int | None = None  # position in history while recalling
        self._draft = ""

    async def _on_key(self, event: object) -> None:
        from textual import events

        assert isinstance(event, events.Key)
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self.text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)

    def remember(self, text: str) -> None:
        if text.strip() and (not self.prompts or self.prompts[-1] != text):
            self.prompts.append(text)
        self._recall_index = None

    def action_cursor_up(self, select: bool = False) -> None:
        if select or self.cursor_location[0] > 0 or not self.prompts:
            super().action_cursor_up(select)
            return
        if self._recall_index is None:
            self._draft = self.text
            self._recall_index = len(self.prompts)
        if self._recall_index > 0:
            self._recall_index -= 1
            self._show(self.prompts[self._recall_index])

    def action_cursor_down(self, select: bool = False) -> None:
        last_row = self.document.line_count - 1
        if select or self.cursor_location[0] < last_row or self._recall_index is None:
            super().action_cursor_down(select)
            return
        self._recall_index += 1
        if self._recall_index >= len(self.prompts):
            self._recall_index = None
            self._show(self._draft)
        else:
            self._show(self.prompts[self._recall_index])

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)


class MessageView(Static):
    """One turn of the transcript; a reply grows as tokens arrive."""

    def __init__(self, role: str, text: str = "", *, speaker: str | None = None) -> None:
        super().__init__(classes=role)
        self.role = role
        self.body = text
        self.border_title = speaker or ("You" if role == "user" else "Model")

    def on_mount(self) -> None:
        self._render_body()

    def append(self, text: str) -> None:
        if text:
            self.body += text
            self._render_body()

    def set_body(self, text: str, *, speaker: str | None = None) -> None:
        self.body = text
        if speaker:
            self.border_title = speaker
        self._render_body()

    def _render_body(self) -> None:
        self.update(Text(self.body) if self.body else Text("…", style="dim"))


class StatusLine(Static):
    """One line: model, strategy, mode, tokens and tokens per second, what is happening."""

    def show(
        self,
        *,
        model: str,
        strategy: str,
        mode: str,
        tokens: int,
        rate: float | None,
        activity: str,
    ) -> None:
        rate_text = "– tok/s" if rate is None else f"{rate:.1f} tok/s"
        line = Text()
        line.append(f" {model} ", style="bold")
        line.append(f"· {strategy} · {mode} · {tokens} tokens · {rate_text}")
        if activity:
            line.append(f" · {activity}", style="italic")
        self.update(line)
