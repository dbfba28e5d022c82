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
    """The plugins, then each one's options: columns that fit the terminal, or blocks."""
    from rich.console import Console
    from rich.text import Text

    from termlm.cli.tables import Column, print_records

    order = {"strategy": 0, "processor": 1}
    rows = sorted(rows, key=lambda r: (order.get(r["kind"], 2), r["name"]))
    from termlm.textsafe import safe_line as safe  # names and texts that plugins supply

    console = Console(highlight=False)
    console.print(Text("decoding plugins", style="bold underline"))
    found = []
    for row in rows:
        detail = (
            Text(f"error: {safe(str(row['error']))}", style="red")
            if row["error"]
            else safe(str(row["description"]))
        )
        found.append([safe(row["name"]), row["kind"], safe(row["source"]), detail])
    print_records(
        console,
        [
            Column("name", bold=True),
            Column("kind"),
            Column("source"),
            Column("description", wrap=True),
        ],
        found,
    )
    with_options = [row for row in rows if row["options"]]
    if with_options:
        console.print()
        console.print(Text("options (--set NAME=VALUE)", style="bold underline"))
    columns = [
        Column("option", bold=True),
        Column("type"),
        Column("default"),
        Column("allowed"),
        Column("help", wrap=True),
    ]
    for row in with_options:
        console.print(Text(safe(row["name"]), style="bold"))
        options = [
            [
                safe(str(o["name"])),
                safe(str(o["type"])),
                safe(repr(o["default"])),
                safe(str(o["range"] or "")),
                safe(str(o["help"])),
            ]
            for o in row["options"]
        ]
        print_records(console, columns, options, indent=2)
    from termlm.decoding.registry import ENV_DIRS, user_folder

    folder = user_folder()
    state = "" if folder.is_dir() else " (not created yet)"
    Console(stderr=True, highlight=False).print(  # a hint, not the listing: stdout stays clean
        Text(
            f"user plugin folder: {safe(str(folder))}{state}; more with --plugins-dir or {ENV_DIRS}"
        ),
        overflow="fold",
    )
