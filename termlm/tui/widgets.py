"""Small widgets of the chat: the prompt box, one message, the status line."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Static, TextArea

from termlm.tui.safetext import safe_line, safe_text

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
    """One turn of the transcript; a reply grows as tokens arrive.

    ``show_tokens`` colours the body piece by piece (confidence views); ``None`` turns it off.
    """

    def __init__(self, role: str, text: str = "", *, speaker: str | None = None) -> None:
        super().__init__(classes=role)
        self.role = role
        self.body = text
        self.border_title = safe_line(speaker or ("You" if role == "user" else "Model"))
        self.tokens: tuple[list[str], list[str | None], int] | None = None

    def show_tokens(self, pieces: list[str], colours: list[str | None], offset: int) -> None:
        self.tokens = (pieces, colours, offset)
        self._render_body()

    def plain(self) -> None:
        if self.tokens is not None:
            self.tokens = None
            self._render_body()

    def on_mount(self) -> None:
        self._render_body()

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        # A message never scrolls: its "virtual size" is only its size, so a new one needs no
        # layout pass of its own (Textual would run a second one for every growth of a reply;
        # the pass that grew it has already marked it for repainting)
        return super()._size_updated(size, virtual_size, container_size, layout=False)

    def append(self, text: str) -> None:
        if text:
            self.body += text
            self._render_body()

    def set_body(self, text: str, *, speaker: str | None = None) -> None:
        self.body = text
        if speaker:
            self.border_title = safe_line(speaker)
        self._render_body()

    def _render_body(self) -> None:
        if not self.body:
            self.update(Text("…", style="dim"))
        elif self.tokens is not None:
            from termlm.tui.tokenview import coloured

            pieces, colours, offset = self.tokens
            self.update(coloured(self.body, pieces, colours, offset=offset))
        else:
            self.update(Text(safe_text(self.body)))


class PromptHints(Static):
    """Under the prompt: characters or words the model has never seen, and its tokens on request.

    Shown only when there is something to say; ``tokens`` (F7) toggles the tokenization.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tokens_shown = False
        self.unknown: list[tuple[int, int]] = []
        self.pieces: list[str] = []

    def show(self, text: str, unknown: list[tuple[int, int]], pieces: list[str]) -> None:
        """Mark ``unknown`` spans of ``text``; list ``pieces`` when the tokenization is on."""
        from termlm.tui.tokenview import show_token

        self.unknown, self.pieces = unknown, pieces
        line = Text()
        if unknown:
            words = ", ".join(repr(text[a:b]) for a, b in unknown[:6])
            more = f" (+{len(unknown) - 6})" if len(unknown) > 6 else ""
            line.append(" unknown to the model: ", style="bold")
            line.append(words + more, style="bold red")
            line.append("  (read as <unk>)\n", style="dim")
        if self.tokens_shown and text:
            line.append(f" {len(pieces)} tokens: ", style="bold")
            for index, piece in enumerate(pieces[:200]):
                shade = "on #2a3a55" if index % 2 == 0 else "on #3a2a55"
                style = f"bold red {shade}" if piece == "<unk>" else shade
                line.append(show_token(piece), style=style)
        line.rstrip()
        self.display = bool(line.plain.strip())
        self.update(line)


class StatusLine(Static):
    """One line: model, strategy, mode, tokens and tokens per second, what is happening."""

    DEFAULT_CSS = "StatusLine { height: 1; }"  # so that a new text never needs a layout pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: dict[str, Any] = {}  # what ``show`` was last given (drawn again on resize)

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
        self.shown = dict(
            model=model, strategy=strategy, mode=mode, tokens=tokens, rate=rate, activity=activity
        )
        rate_text = "– tok/s" if rate is None else f"{rate:.1f} tok/s"
        count = "1 token" if tokens == 1 else f"{tokens} tokens"
        rest = f"· {strategy} · {mode} · {count} · {rate_text}"
        more = f" · {activity}" if activity else ""
        # the name gives way to the figures; what is happening comes last and may be cut
        name = fit_name(safe_line(model), self.size.width - len(rest) - 2)
        line = Text()
        line.append(f" {name} ", style="bold")
        line.append(rest)
        if more:
            line.append(more, style="italic")
        self.update(line, layout=False)  # one line, whatever it says: no layout pass

    def on_resize(self) -> None:
        if self.shown:
            self.show(**self.shown)


def fit_name(name: str, room: int, least: int = 12) -> str:
    """``name`` in ``room`` cells, its middle cut to "…" (never under ``least`` cells), so that
    what follows it on a line stays in view; ``room`` <= 0: the width is not known yet."""
    if room <= 0 or len(name) <= room:
        return name
    room = max(room, least)
    if len(name) <= room:
        return name
    head = (room - 1) // 2
    return name[:head] + "…" + name[len(name) - (room - 1 - head) :]
