"""The live loss plot under `termlm train`'s progress bar: redrawn at each validation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.progress import Progress
from rich.segment import SegmentLines
from rich.text import Text

from termlm.runs.plot import draw, record_series
from termlm.textsafe import safe_line

PLOT_HEIGHT = 12
MAX_WIDTH = 80


class LivePlot:
    """Training and validation loss of the records so far, and the latest sample."""

    def __init__(self, width: int, color: bool = True, console: Console | None = None) -> None:
        self.width = max(30, min(width, MAX_WIDTH))
        self.color = color
        self.console = console  # given: the plot is rendered once per validation, not per refresh
        self.records: list[dict[str, Any]] = []
        self._shown: RenderableType = Text("")

    def add(self, record: dict[str, Any]) -> None:
        """A validation record (as in metrics.jsonl); the plot is drawn again here, once."""
        self.records.append(record)
        if len(self.records) < 2:
            self._shown = Text("")  # one point is not a curve
            return
        plot = draw(
            [record_series(self.records)],
            x_label="steps",
            y_label="nats/token",
            width=self.width,
            height=PLOT_HEIGHT,
            color=self.color,
        )
        sample = str(record.get("sample", "")).replace("\r", "").replace("\n", " ⏎ ")
        sample = safe_line(sample)  # model text: its control characters shown, never obeyed
        line = Text("latest sample: ", style="bold", no_wrap=True, overflow="ellipsis")
        line.append(sample[: self.width], style="dim")
        shown = Group(Text.from_ansi(plot) if self.color else Text(plot), line)
        if self.console is None:
            self._shown = shown
            return
        options = self.console.options.update_width(self.width)
        self._shown = SegmentLines(
            self.console.render_lines(shown, options, pad=False), new_lines=True
        )

    def renderable(self) -> RenderableType:
        return self._shown


class PlotProgress(Progress):
    """A rich Progress that shows a LivePlot under its bars (with None: a plain Progress)."""

    def __init__(self, plot: LivePlot | None, *columns: Any, **kwargs: Any) -> None:
        self.plot = plot  # before Progress's own set-up, which renders once
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.plot is not None:
            yield self.plot.renderable()
