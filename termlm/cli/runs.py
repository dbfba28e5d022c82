"""`termlm runs`: the run folders, as a table; `termlm runs show RUN...`: their curves."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from termlm.jsonout import dumps as json_dumps

if TYPE_CHECKING:
    from termlm.runs.folder import Bakeoff, Run


def runs(
    args: list[str] = typer.Argument(
        None, metavar="[FOLDER] | show RUN...", help="A folder of runs, or `show` and runs."
    ),
    x: str = typer.Option(
        "steps", "--x", metavar="AXIS", help="show: the x axis, steps, tokens or seconds."
    ),
    bpc: bool = typer.Option(False, "--bpc", help="show: bits per character, not nats/token."),
    plain: bool = typer.Option(False, "--plain", help="show: the table of points, not a plot."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List run folders and bake-offs (FOLDER, default: runs); `runs show RUN...` draws curves.

    `termlm runs show RUN [RUN...]` puts the runs' loss curves on one plot, samples under it; into
    a pipe it writes the table of points instead.
    """
    from termlm.errors import ConfigError

    words = list(args or [])
    if words and words[0] == "show":
        if len(words) < 2:
            raise ConfigError(
                "`termlm runs show` needs a run folder", "e.g. termlm runs show runs/NAME"
            )
        if x not in ("steps", "tokens", "seconds"):
            raise ConfigError(f"--x {x!r} is not an axis", "use --x steps, tokens or seconds")
        _show(words[1:], x=x, bpc=bpc, plain=plain, as_json=as_json)
        return
    if len(words) > 1:
        raise ConfigError(
            "`termlm runs` takes one folder", "to draw runs: termlm runs show RUN [RUN...]"
        )
    _list(words[0] if words else "runs", as_json=as_json)


def _list(folder: str, *, as_json: bool) -> None:
    from pathlib import Path

    from termlm.errors import RunError
    from termlm.runs.folder import list_runs
    from termlm.textsafe import safe_line

    path = Path(folder)
    if not path.is_dir():
        raise RunError(
            f"no runs folder at {safe_line(folder)}",
            "train a model first (termlm train CORPUS.txt), or name the folder: termlm runs FOLDER",
        )
    listing = list_runs(path)
    if as_json:
        typer.echo(json_dumps(listing.to_json(), ensure_ascii=False))
        return
    for skipped, why in listing.skipped:
        typer.echo(f"skipped {safe_line(str(skipped))}: {safe_line(why)}", err=True)
    if not listing.runs and not listing.bakeoffs:
        typer.echo(f"no runs in {safe_line(folder)}; train one with: termlm train CORPUS.txt")
        return
    from rich.console import Console

    from termlm.runs.report import listing_table

    Console(highlight=False).print(listing_table(listing))


def _show(paths: list[str], *, x: str, bpc: bool, plain: bool, as_json: bool) -> None:
    from termlm.runs.report import (
        bpc_notes,
        curves_text,
        listing_table,
        open_targets,
        samples_text,
        show_plain,
    )

    loose, bakeoffs = open_targets(paths)
    if as_json:
        typer.echo(json_dumps(_show_json(loose, bakeoffs, x, bpc), ensure_ascii=False))
        return
    from rich.console import Console

    from termlm.runs.folder import Listing

    console = Console(highlight=False)
    drawing = console.is_terminal and not plain
    width = min(console.width, 120)
    groups = ([(None, loose)] if loose else []) + [(b, b.runs) for b in bakeoffs]
    for note in bpc_notes(loose + [r for b in bakeoffs for r in b.runs], bpc):
        typer.echo(note, err=True)
    for bakeoff, members in groups:
        title = f"bake-off {bakeoff.name}" if bakeoff else None
        if drawing:
            from rich.text import Text

            height = max(12, min(24, console.height - 8))
            text = curves_text(
                members, x=x, bpc=bpc, width=width, height=height, color=True, title=title
            )
            console.print(Text.from_ansi(text))
        else:
            if title:
                sys.stdout.write(f"# {title}\n")
            sys.stdout.write(show_plain(members, x=x, bpc=bpc))
        if bakeoff:
            console.print(listing_table(Listing(bakeoffs=[bakeoff])))
    sys.stdout.write(samples_text(loose + [r for b in bakeoffs for r in b.runs], width))


def _show_json(loose: list[Run], bakeoffs: list[Bakeoff], x: str, bpc: bool) -> dict[str, Any]:
    from termlm.runs.plot import run_series

    def one(run: Run) -> dict[str, Any]:
        series = run_series(run, x, bpc)
        return {
            **run.to_json(),
            "x": x,
            "unit": "bits/char" if bpc else "nats/token",
            "train": [list(p) for p in series.train],
            "val": [list(p) for p in series.val],
            "samples": [{"step": p.step, "text": p.sample} for p in run.points if p.sample],
        }

    return {
        "runs": [one(r) for r in loose],
        "bakeoffs": [
            {"name": b.name, "path": str(b.path), "leaderboard": [one(r) for r in b.runs]}
            for b in bakeoffs
        ],
    }
