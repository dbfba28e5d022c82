"""Inside one reply: pick a token, see what the model weighed there, where it looked, what it felt.

* The reply, coloured by confidence, with the selected token in reverse (Left/Right move).
* The top candidates at that token with bars (Up/Down pick one; Enter continues the reply from
  there down the other path: the screen is dismissed with ``(token index, token id)``).
* Attention models: a heat map of the earlier tokens the model looked at to choose this one.
* Recurrent models: a strip per most active hidden unit over the reply.

The trace (termlm.decoding.trace) is computed in a worker when the screen opens; generation never
pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from termlm.tui.threads import hand_to_ui
from termlm.tui.tokenview import (
    bar,
    coloured,
    confidence_colour,
    heat,
    show_token,
    top_units,
    unit_strip,
)

if TYPE_CHECKING:
    from termlm.conversation.engine import Engine
    from termlm.decoding.trace import Trace
    from termlm.runtime.types import State

HIDDEN_UNITS = 8
ATTENTION_KEYS = 48  # the most recent keys shown in the heat map
REPLY_LINES = 12  # lines of a long reply shown around the cursor (the candidates stay in view)


def around_line(text: Text, line: int, budget: int) -> Text:
    """The ``budget`` lines of ``text`` around line ``line``, with a mark where lines are cut."""
    lines = text.split("\n")
    if len(lines) <= budget:
        return text
    first = min(max(line - budget // 2, 0), len(lines) - budget)
    last = first + budget
    out = Text()
    if first > 0:
        out.append(f"… {first} lines above\n", style="dim")
    out.append_text(Text("\n").join(lines[first:last]))
    if last < len(lines):
        out.append(f"\n… {len(lines) - last} lines below", style="dim")
    return out


STRIP_CHARS = 90  # characters of text in one hidden-unit strip, around the selected token


def strip_window(widths: list[int], selected: int, budget: int) -> tuple[int, int]:
    """[lo, hi) of the pieces around ``selected`` whose widths fit in ``budget`` characters."""
    if not widths:
        return 0, 0
    selected = min(max(selected, 0), len(widths) - 1)
    lo, hi, used = selected, selected + 1, widths[selected]
    while True:
        grew = False
        if hi < len(widths) and used + widths[hi] <= budget:
            used, hi, grew = used + widths[hi], hi + 1, True
        if lo > 0 and used + widths[lo - 1] <= budget:
            used, lo, grew = used + widths[lo - 1], lo - 1, True
        if not grew:
            return lo, hi


@dataclass
class ReplyTokens:
    """A reply as tokens: what the inspector needs, whether from live events or a trace."""

    ids: list[int]
    pieces: list[str]
    probs: list[float]
    alternatives: list[list[tuple[int, str, float]]]  # per token: (id, text, prob), best first
    body: str
    offset: int  # where ``body`` starts in "".join(pieces)


def reply_tokens(message: Any, engine: Engine) -> ReplyTokens:
    """The tokens of a model message: its generation events, else its text encoded again."""
    if message.events:
        ids = [e.token_id for e in message.events]
        pieces = [e.text for e in message.events]
        probs = [e.prob for e in message.events]
        alts = [[(a.token_id, a.text, a.prob) for a in e.alternatives] for e in message.events]
    else:
        ids = engine.encode(message.fed)
        pieces = [engine.token_text(i) for i in ids]
        probs, alts = [], []
    joined = "".join(pieces)
    offset = max(joined.find(message.text), 0) if message.text else 0
    return ReplyTokens(ids, pieces, probs, alts, message.text, offset)


class InspectScreen(ModalScreen[tuple[int, int] | None]):
    """One reply, token by token. Dismissed with (token index, chosen token id) to branch."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f3", "dismiss(None)", "Close"),
        Binding("left", "move(-1)", "Previous token"),
        Binding("right", "move(1)", "Next token"),
        Binding("home", "move(-100000)", "First", show=False),
        Binding("end", "move(100000)", "Last", show=False),
        # priority: the scrolling box must not take Up/Down when its content is taller than it
        Binding("up", "pick(-1)", "Previous candidate", priority=True),
        Binding("down", "pick(1)", "Next candidate", priority=True),
        Binding("enter", "branch", "Continue with it", priority=True),
    ]

    def __init__(
        self,
        engine: Engine,
        tokens: ReplyTokens,
        *,
        prompt: str,
        state: State | None,
        extras: tuple[str, ...],
        can_branch: bool = True,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.tokens = tokens
        self.prompt = prompt
        self.state = state
        self.extras = extras
        self.can_branch = can_branch
        self.trace: Trace | None = None
        self.index = max(len(tokens.ids) - 1, 0)
        self.choice = 0

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="inspect-box"):
            yield Label(
                "Inside the reply  ·  ←/→ token  ·  ↑/↓ candidate  ·  Enter continue with it"
                "  ·  Esc close",
                classes="hint",
            )
            yield Static(id="inspect-reply")
            yield Static(id="inspect-alternatives")
            yield Static(id="inspect-attention")
            yield Static(id="inspect-hidden")

    def on_mount(self) -> None:
        self.index = self._last_visible()
        self.refresh_views()
        if self.tokens.ids and (self.extras or not self.tokens.alternatives):
            self.query_one("#inspect-attention", Static).update(Text("reading the reply…"))
            self._trace_worker()

    def _last_visible(self) -> int:
        spans_end = self.tokens.offset + len(self.tokens.body)
        at, last = 0, 0
        for index, piece in enumerate(self.tokens.pieces):
            if at < spans_end:
                last = index
            at += len(piece)
        return last

    @work(thread=True, exclusive=True, group="trace")
    def _trace_worker(self) -> None:
        try:
            trace = self.engine.trace(self.prompt, self.tokens.ids, state=self.state)
        except Exception as exc:
            hand_to_ui(self.app, self._trace_failed, exc)
            return
        hand_to_ui(self.app, self._traced, trace)

    def _traced(self, trace: Trace) -> None:
        self.trace = trace
        if not self.tokens.alternatives and trace.top:  # a reopened reply: no live events
            text = self.engine.token_text
            self.tokens.alternatives = [[(i, text(i), p) for i, p in row] for row in trace.top]
            self.tokens.probs = [float(2.718281828**-s) for s in trace.surprisal.tolist()]
        self.refresh_views()

    def _trace_failed(self, exc: Exception) -> None:
        self.query_one("#inspect-attention", Static).update(
            Text(f"cannot read the reply again: {exc}", style="red")
        )

    # ------------------------------------------------------------------ drawing

    def refresh_views(self) -> None:
        self._draw_reply()
        self._draw_alternatives()
        self._draw_attention()
        self._draw_hidden()

    def _draw_reply(self) -> None:
        t = self.tokens
        colours: list[str | None] = (
            [confidence_colour(p) for p in t.probs] if t.probs else [None] * len(t.pieces)
        )
        body = t.body if t.body else "".join(t.pieces)
        offset = t.offset if t.body else 0
        text = coloured(body, t.pieces, colours, offset=offset, selected=self.index)
        at = sum(len(piece) for piece in t.pieces[: self.index]) - offset
        line = body.count("\n", 0, max(at, 0))
        self.query_one("#inspect-reply", Static).update(around_line(text, line, REPLY_LINES))

    def _draw_alternatives(self) -> None:
        t = self.tokens
        out = Text()
        if not t.ids:
            out.append("no tokens in this reply", style="dim")
        else:
            chosen = show_token(t.pieces[self.index]) if self.index < len(t.pieces) else "?"
            prob = t.probs[self.index] if self.index < len(t.probs) else None
            out.append(f"Token {self.index + 1}/{len(t.ids)}: ", style="bold")
            out.append(chosen, style="reverse")
            if prob is not None:
                out.append(f"  p = {prob:.3f}")
            out.append("\n")
            rows = t.alternatives[self.index] if self.index < len(t.alternatives) else []
            if not rows:
                out.append("  the candidates are being read…" if self.trace is None else "  —")
            for k, (token_id, label, p) in enumerate(rows):
                mark = "▶ " if k == self.choice else "  "
                style = "bold" if token_id == t.ids[self.index] else ""
                out.append(f"{mark}{show_token(label)[:14]:<14} ", style=style)
                out.append(bar(p), style=confidence_colour(p))
                out.append(f" {p * 100:5.1f}%\n")
        self.query_one("#inspect-alternatives", Static).update(out)

    def _draw_attention(self) -> None:
        widget = self.query_one("#inspect-attention", Static)
        trace = self.trace
        if "attention" not in self.extras:
            widget.display = False
            return
        if trace is None:
            return
        found = trace.attention_row(self.index) if trace.attention else None
        out = Text("Attention ", style="bold")
        if found is None:
            out.append("(nothing read before this token)", style="dim")
            widget.update(out)
            return
        first, weights = found
        keys = trace.history[first : first + len(weights)]
        weights, keys = weights[-ATTENTION_KEYS:], keys[-ATTENTION_KEYS:]
        out.append(f"to choose token {self.index + 1}: the {len(keys)} tokens before it\n")
        labels = [self.engine.token_text(k) for k in keys]
        out.append_text(heat(weights, labels))
        ranked = sorted(zip(weights.tolist(), labels, strict=True), reverse=True)[:3]
        out.append("\nmost: " + ", ".join(f"{show_token(lab)} {w:.2f}" for w, lab in ranked))
        widget.update(out)

    def _draw_hidden(self) -> None:
        widget = self.query_one("#inspect-hidden", Static)
        trace = self.trace
        if "hidden" not in self.extras:
            widget.display = False
            return
        if trace is None or trace.hidden is None:
            return
        hidden = trace.hidden  # [N, H]
        out = Text(
            f"Hidden units (the {HIDDEN_UNITS} that vary most; red +, blue −)\n", style="bold"
        )
        pieces = self.tokens.pieces[: hidden.shape[0]]
        lo, hi = strip_window([len(show_token(p)) for p in pieces], self.index, STRIP_CHARS)
        for unit in top_units(hidden, HIDDEN_UNITS):
            out.append(f"{unit:>4} ", style="dim")
            out.append_text(unit_strip(hidden[lo:hi, unit], pieces[lo:hi], self.index - lo))
            value = float(hidden[self.index, unit]) if self.index < hidden.shape[0] else 0.0
            out.append(f" {value:+.2f}\n", style="dim")
        widget.update(out)

    # ------------------------------------------------------------------ keys

    def action_move(self, delta: int) -> None:
        if not self.tokens.ids:
            return
        self.index = min(max(self.index + delta, 0), len(self.tokens.ids) - 1)
        self.choice = 0
        self.refresh_views()

    def action_pick(self, delta: int) -> None:
        rows = self.tokens.alternatives[self.index] if self.tokens.alternatives else []
        if rows:
            self.choice = (self.choice + delta) % len(rows)
            self._draw_alternatives()

    def action_branch(self) -> None:
        rows = self.tokens.alternatives[self.index] if self.tokens.alternatives else []
        if not rows:
            return
        if not self.can_branch:
            self.notify("stop the reply first (Esc)", severity="warning")
            return
        self.dismiss((self.index, rows[self.choice][0]))
