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
from rich.text import Text

from termlm.runs.live import LivePlot, PlotProgress
from termlm.textsafe import safe_line
from termlm.training import events


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
        events.emit(
            "start", step=step, elapsed=elapsed, total_steps=self.total_steps, budget=self.budget
        )
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
        events.progress(
            step=step,
            elapsed=elapsed,
            total_steps=self.total_steps,
            budget=self.budget,
            epoch=epoch,
            loss=loss,
            accuracy=accuracy,
            tokens_per_s=tokens_per_s,
        )
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
        """One line per validation; the sample is corpus and model text, printed as text."""
        events.emit("validation", improved=improved, **record)
        if not self.enabled:
            return
        if self.plot is not None:
            self.plot.add(record)
        mark = "*" if improved else " "
        line = Text(
            f"{mark} step {record['step']:>6}  train {record['train_loss']:.4f}  "
            f"val {record['val_loss']:.4f}  ppl {record['val_ppl']:.2f}  "
        )
        line.append(one_line(record["sample"]), style="dim")
        self.console.print(line, highlight=False, no_wrap=True, overflow="ellipsis")

    def say(self, message: str) -> None:
        """A line of what training is doing, at once (as text: it may quote the corpus)."""
        events.emit("say", text=message)
        if self.enabled:
            self.console.print(Text(message), highlight=False)

    def say_setup(
        self,
        prepared: Any,
        *,
        params: int,
        device: str,
        per_epoch: int,
        total_steps: int | None,
        budget: float | None,
        epochs: float | None,
    ) -> None:
        """What was read, what will be trained, where, and for how long."""
        events.emit(
            "setup",
            run_dir=str(prepared.run_dir),
            level=prepared.options.level,
            arch=prepared.model_config.arch,
            params=params,
            vocab_size=prepared.tokenizer.vocab_size,
            per_epoch=per_epoch,
            total_steps=total_steps,
            budget=budget,
        )
        if not self.enabled:
            return
        options, config = prepared.options, prepared.model_config
        train_tokens = len(
            getattr(prepared.batches, "ids", getattr(prepared.batches, "inputs", ()))
        )
        val_tokens = len(prepared.val_ids)
        self.say(
            f"vocabulary {prepared.tokenizer.vocab_size:,} tokens ({options.level}); "
            f"{train_tokens:,} training and {val_tokens:,} validation tokens"
        )
        if prepared.split_description:
            self.say(prepared.split_description)
        arch = config.arch + (" (bidirectional window)" if config.bidirectional else "")
        heads = f", {config.heads} heads" if config.arch == "transformer" else ""
        tied = ", tied" if config.tie else ""
        self.say(
            f"model {arch}: {config.layers} layer{'s' if config.layers > 1 else ''}, "
            f"embed {config.embed}, hidden {config.hidden}{heads}, context {config.context}, "
            f"dropout {config.dropout:g}{tied}: {params:,} parameters; "
            f"lr {options.lr:g}, batch {options.batch_size}"
        )
        for note in prepared.notes:
            self.say(f"  chosen for this text: {note}")
        self.say(f"device {device}")
        plan = f"{per_epoch:,} steps per epoch"
        if budget:
            plan += f"; budget {budget / 60:g} min"
        if total_steps:
            plan += f"; {total_steps:,} steps" + (f" ({epochs:g} epochs)" if epochs else "")
        if options.patience:
            plan += (
                f"; early stop after {options.patience} validations without gain "
                "(--patience 0: off)"
            )
        self.say(plan)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def one_line(text: str, width: int = 90) -> str:
    """Text on one line: line breaks shown as ⏎, control characters escaped, cut to `width`."""
    return safe_line(text.replace("\r\n", "\n").replace("\n", " ⏎ "))[:width]


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
