"""What `termlm runs` prints: the table of runs (80 columns) and the curves of chosen runs."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from termlm.errors import RunError
from termlm.runs.folder import (
    Bakeoff,
    Listing,
    NotARun,
    Run,
    is_run,
    read_bakeoff,
    read_run,
    subfolders,
)
from termlm.runs.plot import X_LABELS, draw, points_table, run_series
from termlm.textsafe import safe_line, safe_markup


def compact(n: float | None, digits: int = 0) -> str:
    """1234567 -> 1.2M, 12345 -> 12K; '-' for unknown."""
    if n is None:
        return "-"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}K"
    return f"{n:.{digits}f}"


def state_text(run: Run) -> str:
    if run.state == "interrupted":
        return "interrupted: resumable" if run.resumable else "interrupted"
    if run.state == "stopped" and run.resumable:
        return "stopped: resumable"
    return run.state


def _model(run: Run) -> str:
    return f"{run.level} {run.arch}"


def _row(table: Table, run: Run, name: str) -> None:
    table.add_row(
        safe_markup(name),
        safe_markup(run.corpus),
        safe_markup(_model(run)),
        compact(run.params),
        compact(run.steps),
        "-" if run.best_val is None else f"{run.best_val:.3f}",
        "-" if run.bpc is None else f"{run.bpc:.2f}",
        compact(run.tokens_per_s),
        state_text(run),
    )


# (heading, right-aligned, width at most, cut with an ellipsis): 80 columns in all
COLUMNS = (
    ("run", False, 14, True),
    ("corpus", False, 10, True),
    ("model", False, 12, True),
    ("params", True, 6, True),
    ("steps", True, 5, True),
    ("val", True, 5, True),
    ("bpc", True, 4, True),
    ("tok/s", True, 5, True),
    ("state", False, 12, False),  # "interrupted: resumable" takes two lines
)


def listing_table(listing: Listing) -> Table:
    """One row per run; a bake-off as one row with its leaderboard under it."""
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), show_edge=False)
    for column, right, width, cut in COLUMNS:
        table.add_column(
            column,
            justify="right" if right else "left",
            no_wrap=cut,
            overflow="ellipsis" if cut else "fold",
            max_width=width,
            min_width=width if right else None,
        )
    for run in listing.runs:
        _row(table, run, run.name)
    for bakeoff in listing.bakeoffs:
        table.add_row(
            safe_markup(bakeoff.name),
            safe_markup(bakeoff.runs[0].corpus if bakeoff.runs else "-"),
            f"bake-off ({len(bakeoff.runs)})",
            *([""] * 6),
        )
        for place, run in enumerate(bakeoff.runs, 1):
            _row(table, run, f" {place}. {run.name}")
    return table


def open_targets(paths: list[str]) -> tuple[list[Run], list[Bakeoff]]:
    """The runs and bake-offs named on the command line; RunError for anything else."""
    runs: list[Run] = []
    bakeoffs: list[Bakeoff] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise RunError(
                f"no run folder at {safe_line(given)}", "`termlm runs` lists the runs it can find"
            )
        if is_run(path):
            try:
                runs.append(read_run(path))
            except NotARun as exc:
                raise RunError(f"{safe_line(given)} is not a readable run: {exc}") from None
            continue
        bakeoff = read_bakeoff(path)
        if bakeoff is not None:
            bakeoffs.append(bakeoff)
            continue
        inner = [b for b in map(read_bakeoff, subfolders(path)) if b is not None]
        if not inner:
            raise RunError(
                f"{safe_line(given)} is neither a run folder (no config.json) nor a bake-off",
                "`termlm runs` lists the runs it can find",
            )
        bakeoffs.extend(inner)  # a folder of bake-offs (bakeoff --out)
    return runs, bakeoffs


def curves_text(
    runs: list[Run],
    *,
    x: str,
    bpc: bool,
    width: int,
    height: int,
    color: bool,
    title: str | None = None,
) -> str:
    """The runs' curves on one plot."""
    usable = [r for r in runs if not bpc or r.bpc_per_nat is not None]
    y_label = "bits/char" if bpc else "nats/token"
    return draw(
        [run_series(run, x, bpc) for run in usable],
        x_label=X_LABELS[x],
        y_label=y_label,
        width=width,
        height=height,
        color=color,
        title=title,
    )


def samples_text(runs: list[Run], width: int) -> str:
    """The samples written at each validation, oldest first, one line each."""
    lines: list[str] = []
    for run in runs:
        lines.append(f"samples of {safe_line(run.name)}:")
        shown = [p for p in run.points if p.sample]
        if not shown:
            lines.append("  (none recorded)")
        for point in shown:
            head = f"  step {point.step:>7}  "
            text = safe_line(point.sample.replace("\r", "").replace("\n", " ⏎ "))
            lines.append((head + text)[: max(width, 40)])
    return "\n".join(lines) + "\n"


def bpc_notes(runs: list[Run], bpc: bool) -> list[str]:
    if not bpc:
        return []
    return [
        f"{safe_line(r.name)}: bits/char unknown (a {r.level}-level run that did not finish)"
        for r in runs
        if r.bpc_per_nat is None
    ]


def show_plain(runs: list[Run], *, x: str, bpc: bool) -> str:
    return points_table(runs, x, bpc)
