"""The live loss curve of the Train view: plotext drawn as text into a Static."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from termlm.runs.plot import draw, record_series
from termlm.tui.safetext import safe_line


def curve_text(records: list[dict[str, Any]], width: int, height: int, title: str = "") -> str:
    """Training loss (a line) and validation loss (marked points) against steps, as text."""
    if len(records) < 2:
        done = len(records)
        return f"the curve starts at the second validation ({done} so far)"
    return draw(
        [record_series(records)],
        x_label="steps",
        y_label="nats/token",
        width=max(width, 30),
        height=max(height - 1, 6),  # the legend's line under the plot
        title=title or None,
    )


class CurveView(Static):
    """Redrawn when records arrive or its size changes (never per frame)."""

    DEFAULT_CSS = """
    CurveView { height: 1fr; min-height: 8; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.records: list[dict[str, Any]] = []
        self.title_text = ""
        self.active = False  # nothing is drawn before a training starts
        self.notes: list[str] = []
        self._drawn_for: tuple[int, int, int, str, bool, int] | None = None

    def show(
        self, records: list[dict[str, Any]], title: str = "", notes: list[str] | None = None
    ) -> None:
        """``notes``: what the trainer said, shown until there is a curve to draw."""
        self.records, self.title_text, self.active = list(records), title, True
        self.notes = list(notes or [])
        self._draw()

    def clear(self) -> None:
        self.records, self.title_text, self.active = [], "", False
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width, height = self.size.width, self.size.height
        key = (len(self.records), width, height, self.title_text, self.active, len(self.notes))
        if key == self._drawn_for or width <= 0 or height <= 0:
            return
        self._drawn_for = key
        shown = curve_text(self.records, width, height, self.title_text) if self.active else ""
        text = Text(shown)
        if self.active and len(self.records) < 2 and self.notes:
            for note in self.notes[-(height - 2) :]:
                text.append("\n" + safe_line(note), style="dim")
        self.update(text)
