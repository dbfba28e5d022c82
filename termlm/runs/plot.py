"""Loss curves as terminal text (plotext), and as a plain table of points for pipes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from termlm.runs.folder import Point, Run

X_AXES = ("steps", "tokens", "seconds")
X_LABELS = {"steps": "steps", "tokens": "tokens seen", "seconds": "seconds of training"}
# One marker pair (train, validation) per curve: told apart without colour, too.
MARKERS = [("•", "x"), ("·", "o"), ("∙", "+"), ("-", "*"), ("'", "#"), ("`", "@")]


@dataclass
class Series:
    label: str
    train: list[tuple[float, float]] = field(default_factory=list)
    val: list[tuple[float, float]] = field(default_factory=list)


def x_of(point: Point, x: str) -> float | None:
    if x == "steps":
        return float(point.step)
    if x == "tokens":
        return point.tokens
    return point.seconds


def run_series(run: Run, x: str = "steps", bpc: bool = False, label: str | None = None) -> Series:
    """A run's training and validation points against `x`, in nats/token or bits/char."""
    scale = run.bpc_per_nat if bpc else 1.0
    series = Series(label or run.name)
    if scale is None:
        return series
    for point in run.points:
        where = x_of(point, x)
        if where is None:
            continue
        if point.train_loss is not None:
            series.train.append((where, point.train_loss * scale))
        if point.val_loss is not None:
            series.val.append((where, point.val_loss * scale))
    return series


def record_series(records: list[dict[str, Any]]) -> Series:
    """Validation records as the trainer writes them (the live plot in `termlm train`)."""
    series = Series("loss")
    for record in records:
        step = record.get("step")
        if not isinstance(step, int | float):
            continue
        train, val = record.get("train_loss"), record.get("val_loss")
        if isinstance(train, int | float) and train == train:
            series.train.append((float(step), float(train)))
        if isinstance(val, int | float) and val == val:
            series.val.append((float(step), float(val)))
    return series


def draw(
    series: list[Series],
    *,
    x_label: str,
    y_label: str,
    width: int,
    height: int,
    color: bool = False,
    title: str | None = None,
) -> str:
    """The curves on one plot: training as a line, validation as marked points."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(max(width, 20), max(height, 6))
    plt.theme("pro" if color else "clear")
    several = len(series) > 1
    legend: list[str] = []  # under the plot, where it hides no point
    for index, one in enumerate(series):
        train_mark, val_mark = MARKERS[index % len(MARKERS)]
        name = f"{one.label} " if several else ""
        if one.train:
            xs, ys = zip(*one.train, strict=True)
            plt.plot(list(xs), list(ys), marker=train_mark)
            legend.append(f"{train_mark} {name}train")
        if one.val:
            legend.append(f"{val_mark} {name}validation")
    for index, one in enumerate(series):  # validation over every training line
        if one.val:
            xs, ys = zip(*one.val, strict=True)
            plt.scatter(list(xs), list(ys), marker=MARKERS[index % len(MARKERS)][1])
    drawn = bool(legend)
    if not drawn:
        return "(no validation records yet: nothing to draw)"
    plt.xlabel(x_label)
    plt.ylabel(y_label)
    if title:
        plt.title(title)
    text: str = plt.build()
    plt.clear_figure()
    text = (text if color else plt.uncolorize(text)).rstrip()
    return text + "\n" + "   ".join(legend) + "\n"


def points_table(runs: list[Run], x: str, bpc: bool) -> str:
    """The points behind the plot, one line each: what a pipe gets instead of the drawing."""
    unit = "bits/char" if bpc else "nats/token"
    lines = [f"run\tstep\t{x if x != 'steps' else 'tokens'}\ttrain ({unit})\tval ({unit})"]
    if x == "steps":
        lines[0] = f"run\tstep\ttokens\tseconds\ttrain ({unit})\tval ({unit})"
    for run in runs:
        scale = run.bpc_per_nat if bpc else 1.0
        for point in run.points:
            cells = [run.name, str(point.step)]
            if x == "steps":
                cells += [_fmt(point.tokens, 0), _fmt(point.seconds, 2)]
            else:
                cells.append(_fmt(x_of(point, x), 0 if x == "tokens" else 2))
            for loss in (point.train_loss, point.val_loss):
                cells.append(_fmt(loss * scale if loss is not None and scale else None, 4))
            lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
