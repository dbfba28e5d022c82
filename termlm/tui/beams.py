"""The live beam panel: every beam with its score while beam search runs, then the n-best list.

The screen feeds it the latest ``BeamsEvent`` (only when it is open, so a closed panel costs
nothing) and, at the end, the n-best; picking one posts ``BeamPanel.Chosen``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from termlm.tui.tokenview import show_token

if TYPE_CHECKING:
    from termlm.decoding.events import Beam

LINE = 70  # characters of each beam's end shown


def beam_line(beam: Beam, rank: int, *, best: float | None = None) -> Text:
    """One beam: rank, score, finished mark and the end of its text."""
    tail = beam.text[-LINE:]
    line = Text(f"{rank:>2}. ", style="dim")
    line.append(f"{beam.score:8.3f} ", style="bold" if rank == 1 else "")
    line.append("✓ " if beam.finished else "  ", style="green")
    line.append(show_token(tail) if tail.strip() == "" else tail.replace("\n", "⏎"))
    if best is not None and rank > 1:
        line.append(f"  ({score_gap(beam.score - best)})", style="dim")
    return line


def score_gap(gap: float) -> str:
    """A difference of scores that never reads as zero when it is not: -0.0031, -1.25."""
    if gap == 0:
        return "0"
    if abs(gap) >= 0.01:
        return f"{gap:+.2f}"
    return f"{gap:+.2g}" if abs(gap) >= 1e-4 else f"{gap:+.1e}"


def beams_word(count: int) -> str:
    return "1 beam" if count == 1 else f"{count} beams"


class BeamPanel(Vertical):
    """Live beams, then the n-best. Enter on an n-best line takes it as the reply."""

    class Chosen(Message):
        def __init__(self, beam: Beam) -> None:
            super().__init__()
            self.beam = beam

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.n_best: list[Beam] = []
        self.step = 0

    def compose(self) -> ComposeResult:
        yield Label("Beams", id="beams-title", classes="section")
        yield Static(id="beams-live")
        yield OptionList(id="beams-list")

    def show_live(self, step: int, beams: Sequence[Beam]) -> None:
        self.step = step
        self.n_best = []
        self.query_one("#beams-title", Label).update(
            f"Beam search · step {step + 1} · {beams_word(len(beams))} live"
        )
        best = beams[0].score if beams else None
        lines = Text("\n").join(beam_line(b, k + 1, best=best) for k, b in enumerate(beams))
        self.query_one("#beams-list", OptionList).display = False
        live = self.query_one("#beams-live", Static)
        live.display = True
        live.update(lines)  # a plain text: cheap enough to redraw while the search runs

    def show_n_best(self, beams: Sequence[Beam]) -> None:
        self.n_best = list(beams)
        self.query_one("#beams-title", Label).update(
            f"N-best · {beams_word(len(beams))}  (shift+tab to the list; Enter takes one as the reply)"
        )
        self._fill(beams)

    def searching(self) -> None:
        """A new reply starts: the previous reply's n-best goes (it cannot be taken any more)."""
        self.n_best = []
        self.query_one("#beams-title", Label).update("Beams · waiting for the first step…")
        self.query_one("#beams-live", Static).display = False
        options = self.query_one("#beams-list", OptionList)
        options.clear_options()
        options.display = False

    def finish(self, beams: Sequence[Beam]) -> None:
        """The search ended: its n-best, or (stopped before it settled) a plain word saying so."""
        if beams:
            self.show_n_best(beams)
            return
        self.n_best = []
        self.query_one("#beams-title", Label).update("Beams · no search running")
        self.query_one("#beams-live", Static).display = False
        options = self.query_one("#beams-list", OptionList)
        options.clear_options()
        options.display = False

    def _fill(self, beams: Sequence[Beam]) -> None:
        self.query_one("#beams-live", Static).display = False
        options = self.query_one("#beams-list", OptionList)
        options.display = True
        best = beams[0].score if beams else None
        options.clear_options()
        options.add_options(
            [Option(beam_line(b, k + 1, best=best), id=str(k)) for k, b in enumerate(beams)]
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if self.n_best and event.option.id is not None:
            self.post_message(self.Chosen(self.n_best[int(event.option.id)]))
