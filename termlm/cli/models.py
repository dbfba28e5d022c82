"""`termlm models`: the model files termlm can find, and which one is the default."""

from __future__ import annotations

import typer

from termlm.jsonout import dumps as json_dumps


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _params(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.0f}K"
    return str(n)


def _lineage(parent: dict[str, str] | None) -> str:
    """The source model's name and the start of its sha256, escaped for the rich table."""
    if parent is None:
        return "-"
    from termlm.textsafe import safe_markup

    return safe_markup(f"{parent['name']} ({parent['sha256'][:8]})")


def models(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the exported models termlm can find (TERMLM_MODELS_DIR, user folder, ./exported, bundled)."""
    from termlm.runtime.registry import find_models, search_dirs

    entries = find_models()
    if as_json:
        typer.echo(json_dumps([entry.to_json() for entry in entries], ensure_ascii=False))
        return
    if not entries:
        from termlm.textsafe import safe_line

        folders = "\n  ".join(safe_line(str(path)) for _, path in search_dirs())
        typer.echo(f"no models found; looked in:\n  {folders}")
        typer.echo("export one with `termlm export RUN_DIR`, or set TERMLM_MODELS_DIR")
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    lineage = any(entry.init_from for entry in entries)  # a "from" column only when needed
    columns = ("", "name", *(("from",) if lineage else ()), "arch", "level", "params")
    for column in (*columns, "val loss", "size", "path"):
        table.add_column(
            column, justify="right" if column in ("params", "val loss", "size") else "left"
        )
    from termlm.textsafe import safe_markup

    for entry in entries:
        loss = f"{entry.val_loss:.3f}" if entry.val_loss is not None else "-"
        table.add_row(
            "*" if entry.is_default else "",
            safe_markup(entry.name),
            *((_lineage(entry.init_from),) if lineage else ()),
            safe_markup(entry.arch) if entry.arch else "[red]unreadable[/]",
            safe_markup(entry.level or "-"),
            _params(entry.params),
            loss,
            _size(entry.size),
            safe_markup(str(entry.path) if entry.error is None else f"{entry.path}: {entry.error}"),
        )
    Console().print(table)
