"""``score`` in the chat: paste a text, see every token coloured by how surprised the model was.

One pass over the text (termlm.decoding.trace, read in chunks), from an empty state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static, TextArea

from termlm.tui.threads import hand_to_ui
from termlm.tui.tokenview import coloured, surprise_colour

if TYPE_CHECKING:
    from termlm.conversation.engine import Engine
    from termlm.decoding.trace import Trace


def score_summary(trace: Trace, chars: int) -> str:
    """Mean surprisal, perplexity and bits per character of a scored text."""
    n = len(trace)
    if n == 0:
        return "nothing to score"
    loss = float(trace.surprisal.astype("float64").mean())
    bpc = loss * n / max(chars, 1) / math.log(2.0)
    worst = float(trace.surprisal.max())
    count = "1 token" if n == 1 else f"{n} tokens"
    return (
        f"{count} · mean surprisal {loss:.3f} nats · perplexity {math.exp(min(loss, 700)):.2f}"
        f" · {bpc:.3f} bits/char · most surprising {worst:.2f} nats"
    )


class ScoreScreen(ModalScreen[None]):
    """A text box; F5 scores it; the result is the text coloured by surprisal."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("f5,ctrl+s", "score", "Score", priority=True),
    ]

    def __init__(self, engine: Engine, text: str = "") -> None:
        super().__init__()
        self.engine = engine
        self.initial = text
        self.trace: Trace | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="score-box"):
            yield Label(
                "Score a text: paste it, press F5 (or Ctrl+S). Green: expected; red: surprising."
                "  Esc closes",
                classes="hint",
            )
            yield TextArea(self.initial, id="score-input", soft_wrap=True)
            yield Static(id="score-summary")
            with VerticalScroll(id="score-scroll"):
                yield Static(id="score-result")

    def on_mount(self) -> None:
        self.query_one("#score-input", TextArea).focus()
        if self.initial.strip():
            self.action_score()

    def action_score(self) -> None:
        text = self.query_one("#score-input", TextArea).text
        if not text.strip():
            self.notify("paste or type a text to score first")
            return
        self.query_one("#score-summary", Static).update("scoring…")
        self._score_worker(text)

    @work(thread=True, exclusive=True, group="score")
    def _score_worker(self, text: str) -> None:
        try:
            ids = self.engine.encode(text)
            trace = self.engine.trace("", ids, state=None, step_by_step=False)
            pieces = [self.engine.token_text(i) for i in ids]
        except Exception as exc:
            hand_to_ui(self.app, self._failed, exc)
            return
        hand_to_ui(self.app, self._scored, text, trace, pieces)

    def _failed(self, exc: Exception) -> None:
        self.query_one("#score-summary", Static).update(Text(f"cannot score: {exc}", style="red"))

    def _scored(self, text: str, trace: Trace, pieces: list[str]) -> None:
        self.trace = trace
        self.query_one("#score-summary", Static).update(score_summary(trace, len(text)))
        colours: list[str | None] = [surprise_colour(s) for s in trace.surprisal.tolist()]
        body = text
        if len("".join(pieces)) != len(text):  # a tokenizer that changes the text (word level)
            pieces = [p + " " for p in pieces]
            body = "".join(pieces)
        self.query_one("#score-result", Static).update(coloured(body, pieces, colours))
