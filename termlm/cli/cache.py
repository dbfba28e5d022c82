"""`termlm cache`: the token files and fitted tokenizers kept for reuse, their size, and clearing."""

from __future__ import annotations

import time

import typer

from termlm.jsonout import dumps as json_dumps
from termlm.units import file_size as _size


def cache(
    clear: bool = typer.Option(False, "--clear", help="Delete everything in the cache."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List the token files kept in the cache (TERMLM_CACHE_DIR, else the user cache folder).

    A corpus is tokenized once into a token file there; later runs on the same text and
    tokenizer read it by memory map. Everything in it is made again when needed.
    """
    from termlm.textsafe import safe_line
    from termlm.tokencache import cache_dir, list_entries, total_bytes
    from termlm.tokencache import clear as clear_cache

    folder = cache_dir()
    if clear:
        files, freed = clear_cache()
        if as_json:
            typer.echo(json_dumps({"folder": str(folder), "removed": files, "freed_bytes": freed}))
            return
        typer.echo(f"cleared {safe_line(str(folder))}: {files} entries, {_size(freed)} freed")
        return
    entries = list_entries()
    total = total_bytes()
    if as_json:
        typer.echo(
            json_dumps(
                {
                    "folder": str(folder),
                    "bytes": total,
                    "token_files": [entry.to_json() for entry in entries],
                },
                ensure_ascii=False,
            )
        )
        return
    typer.echo(f"cache {safe_line(str(folder))}: {_size(total)}")
    if not entries:
        typer.echo("no token files yet: `termlm train CORPUS` makes one", err=True)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None)
    for column in ("corpus", "level", "split", "tokens", "size", "last used", "key"):
        table.add_column(column, justify="right" if column in ("tokens", "size") else "left")
    for entry in entries:
        table.add_row(
            Text(safe_line(entry.corpus)),
            entry.level,
            entry.split,
            f"{entry.tokens:,}",
            _size(entry.bytes),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.used)),
            entry.key[:12],
        )
    Console().print(table)
    typer.echo("clear it with: termlm cache --clear")
