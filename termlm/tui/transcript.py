"""The transcript: one ``MessageView`` per message of the path shown, and the reply that streams.

It holds views only; the conversation itself is the core's. The screen tells it what changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.widgets import Static

from termlm.tui.safetext import safe_line
from termlm.tui.widgets import MessageView

if TYPE_CHECKING:
    from termlm.conversation.tree import Conversation, Message


def subtitle(strategy: str, tokens: int, stop_reason: str | None) -> str:
    """Under a reply: how it was made, and whether it was stopped."""
    text = f"{strategy} · {plural(tokens, 'token')}"
    if stop_reason in ("cancelled", "error"):
        text += " · stopped" if stop_reason == "cancelled" else " · failed"
    return text


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# A scrolling container anchored to its end (Textual 4 and later; before, ``anchor`` meant another
# thing and the transcript follows a reply by scrolling after each of its layout passes)
CAN_ANCHOR = hasattr(VerticalScroll, "release_anchor")


class Transcript(VerticalScroll):
    """The messages shown, oldest first; follows the newest text unless scrolled up."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.views: list[MessageView] = []
        self.reply: MessageView | None = None  # the reply that streams now
        self.welcomed: tuple[str | None, bool] | None = None  # (model, loading) shown
        self.following = False  # following a streaming reply within its layout passes (``grow``)

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        # The layout pass that found the new virtual size has arranged the messages already;
        # Textual would run a second one for it at every growth of a streaming reply (a new
        # scrollbar still asks for its own pass)
        return super()._size_updated(size, virtual_size, container_size, layout=False)

    def compose(self) -> ComposeResult:
        yield Static(id="welcome")

    def on_mount(self) -> None:
        self.welcome(None)

    def welcome(self, model: str | None, loading: bool = True) -> None:
        """What the first screen says: the model, how to send, where the keys are."""
        self.welcomed = (model, loading)
        text = Text()
        if model:
            text.append("Talking to ")
            text.append(safe_line(model), style="bold")
            text.append(" (F2: change the model, strategy and options)\n")
        elif loading:
            text.append("Loading the model…\n")
        else:
            text.append("No model is loaded: press F2 and pick one\n")
        text.append("Type a prompt below and press Enter to send; Ctrl+J starts a new line.\n")
        text.append("Esc stops a reply · Ctrl+O saved chats · F1 every key · Ctrl+Q quits")
        welcome = self.query_one("#welcome", Static)
        welcome.update(text)
        welcome.display = not self.views and self.reply is None

    def add(self, message: Message, view: MessageView | None = None) -> MessageView:
        """Show a new message at the end (``view``: the streamed reply that became it)."""
        if view is None:
            view = MessageView(message.role, message.text, speaker=message.speaker)
            if message.role == "model" and message.strategy:
                view.border_subtitle = subtitle(
                    message.strategy, message.tokens, message.stop_reason
                )
            self.mount(view)
            self.follow(force=True)
        self.views.append(view)
        self.query_one("#welcome").display = False
        return view

    def start_reply(self, speaker: str | None, prefix: str = "") -> MessageView:
        view = MessageView("model", speaker=speaker)
        self.reply = view
        self.query_one("#welcome").display = False
        self.mount(view)
        if prefix:
            view.set_body(prefix)
        self.follow(force=True)
        return view

    def drop_reply(self) -> None:
        self.let_go()
        if self.reply is not None:
            self.reply.remove()
            self.reply = None
        self.query_one("#welcome").display = not self.views

    def cut(self, index: int) -> None:
        """Remove the views of messages ``index`` and after."""
        for view in self.views[index:]:
            view.remove()
        self.views = self.views[:index]
        self.query_one("#welcome").display = not self.views and self.reply is None

    def show(self, conversation: Conversation, start: int = 0) -> None:
        """Show ``conversation.messages[start:]`` (after a branch switch, or a whole chat)."""
        self.cut(start)
        new = [
            self._view(message, conversation.branch_label(start + k))
            for k, message in enumerate(conversation.messages[start:])
        ]
        self.views.extend(new)
        if new:
            self.mount_all(new)
        self.query_one("#welcome").display = not self.views and self.reply is None
        self.follow(force=True)

    @staticmethod
    def _view(message: Message, branch: str) -> MessageView:
        view = MessageView(message.role, message.text, speaker=message.speaker)
        text = ""
        if message.role == "model" and message.strategy:
            text = subtitle(message.strategy, message.tokens, message.stop_reason)
        if branch:
            text = f"{text} · {branch}" if text else branch
        view.border_subtitle = text
        return view

    def at_bottom(self) -> bool:
        return self.scroll_y >= self.max_scroll_y - 1

    def follow(self, force: bool) -> None:
        """Keep the newest text in view, unless the reader has scrolled up."""
        if force:
            self.scroll_end(animate=False)
            if self.reply is not None and CAN_ANCHOR:
                self.call_after_refresh(self._hold_end)

    def grow(self, text: str) -> None:
        """Add ``text`` to the streaming reply and keep its end in view, unless the reader has
        scrolled up.

        Scrolling after the layout pass that grew the reply would paint the transcript a second
        time; anchored, the transcript scrolls within that pass. It is anchored only while the
        reply streams and overflows the transcript (an anchored transcript shorter than its box
        would sit at the bottom of it); a reader who scrolls up releases the anchor, and
        scrolling back to the end takes it again.
        """
        view = self.reply
        if view is None:
            return
        if self.following and self.max_scroll_y <= 0:  # the box grew taller than the text
            self.let_go()
        at_end = self.at_bottom()
        view.append(text)
        if not self.following and at_end:
            self.follow(force=True)

    def _hold_end(self) -> None:
        """After a scroll to the end: anchor there if the streaming reply overflows now."""
        overflowing = self.max_scroll_y > 0
        if self.reply is not None and not self.following and overflowing and self.at_bottom():
            self.following = True
            self.anchor()

    def let_go(self) -> None:
        """The reply has ended: the transcript scrolls as the reader scrolls it (and, unless
        scrolled up, it is scrolled to the reply's end once more: its last text is not laid out
        yet)."""
        if self.following:
            self.following = False
            at_end = self.at_bottom()
            self.anchor(False)
            if at_end:
                self.scroll_end(animate=False)
