"""The training progress bar (rich, on stderr) and the line printed at each validation."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from termlm.runs.live import LivePlot, PlotProgress


class TrainProgress:
    def __init__(
        self,
        *,
        enabled: bool,
        total_steps: int | None,
        budget_seconds: float | None,
        live_plot: bool = True,
    ) -> None:
        self.enabled = enabled
        self.total_steps = total_steps
        self.budget = budget_seconds
        self.console = Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.plot: LivePlot | None = None  # at a terminal: the loss plot under the bar
        if enabled and live_plot and self.console.is_terminal:
            self.plot = LivePlot(self.console.width, console=self.console)

    def start(self, step: int, elapsed: float) -> None:
        if not self.enabled:
            return
        self._progress = PlotProgress(
            self.plot,
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(bar_width=16),
            TextColumn("{task.fields[where]}"),
            TextColumn("loss {task.fields[loss]} ppl {task.fields[ppl]} acc {task.fields[acc]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TextColumn("left"),
            TimeRemainingColumn(compact=True),
            console=self.console,
            transient=False,
        )
        total = (
            float(self.budget)
            if self.budget and not self.total_steps
            else float(self.total_steps or 1)
        )
        completed = elapsed if self.budget and not self.total_steps else float(step)
        self._task = self._progress.add_task(
            "train",
            total=total,
            completed=int(completed),
            epoch=1,
            where="",
            loss="-",
            ppl="-",
            acc="-",
            speed="-",
        )
        self._progress.start()

    def update(
        self,
        step: int,
        elapsed: float,
        *,
        epoch: int,
        loss: float,
        accuracy: float,
        tokens_per_s: float,
    ) -> None:
        if self._progress is None or self._task is None:
            return
        by_time = self.budget is not None and not self.total_steps
        where = f"step {step}" + (f"/{self.total_steps}" if self.total_steps else "")
        self._progress.update(
            self._task,
            completed=elapsed if by_time else step,
            epoch=epoch,
            where=where,
            loss=f"{loss:.3f}",
            ppl=f"{math.exp(min(loss, 50)):.1f}",
            acc=f"{accuracy:.2f}",
            speed=f"{tokens_per_s:,.0f}",
        )

    def log_validation(self, record: dict[str, Any], improved: bool) -> None:
        if not self.enabled:
            return
        if self.plot is not None:
            self.plot.add(record)
        mark = "*" if improved else " "
        sample = record["sample"].replace("\n", " / ")[:70]
        self.console.print(
            f"{mark} step {record['step']:>6}  val loss {record['val_loss']:.4f}  ppl {record['val_ppl']:.2f}  "
            f"[dim]{sample}[/dim]",
            highlight=False,
            markup=True,
            no_wrap=True,
            overflow="ellipsis",
        )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


BIG_CORPUS_BYTES = 20 * 2**20  # corpora larger than this get a bar while read and tokenized


@contextlib.contextmanager
def stage_progress(enabled: bool, description: str) -> Iterator[Callable[[int, int], None]]:
    """A transient bar on stderr for one preparation stage; yields ``advance(done, total)``."""
    if not enabled:
        yield lambda done, total: None
        return
    progress = Progress(
        TextColumn(f"[bold]{description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task(description, total=None)

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield advance
