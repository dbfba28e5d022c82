"""`termlm models`: the model files termlm can find, and which one is the default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from termlm.jsonout import dumps as json_dumps
from termlm.units import file_size


def _params(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.0f}K"
    return str(n)


def _lineage(parent: dict[str, str] | None) -> str:
    """The source model's name and the start of its sha256, control characters escaped."""
    if parent is None:
        return "-"
    from termlm.textsafe import safe_line

    return safe_line(f"{parent['name']} ({parent['sha256'][:8]})")


def models(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the exported models termlm can find (TERMLM_MODELS_DIR, user folder, ./exported, bundled).

    Folders, searched in this order (the first file of a name wins): each folder of
    TERMLM_MODELS_DIR (separated like PATH); the user models folder, platformdirs'
    user_data_dir("termlm")/models (e.g. ~/.local/share/termlm/models on Linux,
    ~/Library/Application Support/termlm/models on macOS); ./exported; the models bundled with
    termlm. Sizes are in MB of 1,000,000 bytes.
    """
    from termlm.runtime.registry import find_models, search_dirs

    entries = find_models()
    if as_json:
        typer.echo(json_dumps([entry.to_json() for entry in entries], ensure_ascii=False))
        return
    if not entries:
        from termlm.textsafe import safe_line

        folders = "\n  ".join(safe_line(str(path)) for _, path in search_dirs())
        typer.echo(f"no models found; looked in:\n  {folders}", err=True)
        typer.echo("export one with `termlm export RUN_DIR`, or set TERMLM_MODELS_DIR", err=True)
        return

    _print_entries(entries)


def _print_entries(entries: list[Any]) -> None:
    """The models folder by folder: a table where it fits the terminal, else one block each."""
    from rich.console import Console
    from rich.text import Text

    from termlm.cli.tables import Column, print_records
    from termlm.textsafe import safe_line as safe  # names and paths read from files

    lineage = any(entry.init_from for entry in entries)  # a "from" column only when needed
    columns = [
        Column("name", bold=True),
        Column("default"),
        *([Column("from")] if lineage else []),
        Column("arch"),
        Column("level"),
        Column("params", justify="right"),
        Column("val loss", justify="right"),
        Column("size", justify="right"),
    ]
    console = Console(highlight=False)
    folders: dict[Path, list[Any]] = {}
    for entry in entries:
        folders.setdefault(entry.path.parent, []).append(entry)
    for number, (folder, found) in enumerate(folders.items()):
        if number:
            console.print()
        console.print(Text(f"{found[0].source}: {safe(str(folder))}", style="dim"), overflow="fold")
        rows = []
        for entry in found:
            loss = f"{entry.val_loss:.3f}" if entry.val_loss is not None else "-"
            rows.append(
                [
                    safe(entry.name),
                    "yes" if entry.is_default else "",
                    *([_lineage(entry.init_from)] if lineage else []),
                    safe(entry.arch) if entry.arch else Text("unreadable", style="red"),
                    safe(entry.level or "-"),
                    _params(entry.params),
                    loss,
                    file_size(entry.size),
                ]
            )
        print_records(console, columns, rows, indent=2)
        for entry in found:
            if entry.error is not None:
                console.print(
                    Text.assemble(
                        "  ", (safe(entry.path.name), "bold"), (f": {safe(entry.error)}", "red")
                    ),
                    overflow="fold",
                )
