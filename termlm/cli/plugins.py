"""`termlm plugins`: every decoding strategy and processor found, with its options and errors."""

from __future__ import annotations

from typing import Any

import typer

from termlm.jsonout import dumps as json_dumps


def plugins(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    plugins_dir: list[str] = typer.Option(
        [], "--plugins-dir", help="Extra folder of decoding plugins (repeatable)."
    ),
) -> None:
    """List the decoding plugins: strategies, logits processors, their options and load errors."""
    from termlm.decoding import build_plugin_manager

    registry = build_plugin_manager(plugins_dirs=plugins_dir)
    rows = [plugin_json(info) for info in registry.infos()]
    if as_json:
        typer.echo(json_dumps(rows, indent=2, ensure_ascii=False))
        return
    _print_table(rows)


def plugin_json(info: Any) -> dict[str, Any]:
    """One ``PluginInfo`` as plain JSON."""
    return {
        "name": info.name,
        "kind": info.kind,
        "source": info.source,
        "description": info.description,
        "options": [
            {
                "name": o.name,
                "type": o.type.__name__,
                "default": o.default,
                "min": o.min,
                "max": o.max,
                "choices": list(o.choices) if o.choices is not None else None,
                "range": o.describe_range(),
                "help": o.help,
            }
            for o in info.options
        ],
        "error": info.error,
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    order = {"strategy": 0, "processor": 1}
    rows = sorted(rows, key=lambda r: (order.get(r["kind"], 2), r["name"]))
    found = Table(title="decoding plugins")
    for column in ("name", "kind", "source", "description"):
        found.add_column(
            column, style="bold" if column == "name" else None, no_wrap=column == "name"
        )
    options = Table(title="options (--set NAME=VALUE)")
    for column in ("option", "plugin", "type", "default", "allowed", "help"):
        options.add_column(
            column, style="bold" if column == "option" else None, no_wrap=column != "help"
        )
    from termlm.textsafe import safe_markup as safe

    for row in rows:
        detail = (
            f"[red]error: {safe(str(row['error']))}[/red]"
            if row["error"]
            else safe(str(row["description"]))
        )
        found.add_row(safe(row["name"]), row["kind"], safe(row["source"]), detail)
        for o in row["options"]:
            options.add_row(
                safe(str(o["name"])),
                safe(row["name"]),
                safe(str(o["type"])),
                safe(repr(o["default"])),
                safe(str(o["range"])),
                safe(str(o["help"])),
            )
    console = Console()
    console.print(found)
    console.print(options)
    from termlm.decoding.registry import ENV_DIRS, user_folder

    folder = user_folder()
    state = "" if folder.is_dir() else " (not created yet)"
    console.print(
        f"user plugin folder: {safe(str(folder))}{state}; more with --plugins-dir or {ENV_DIRS}"
    )
