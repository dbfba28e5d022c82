"""Tables that read at any width: columns when they fit, one record per block when they do not.

Every column but one keeps its values whole (names a person must type are never cut); the one
``wrap`` column (a description, a help text, a path) wraps in what is left. When what is left is
less than ``MIN_WRAP`` cells, each row is printed as a block instead:

    name
      kind: strategy
      description: ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

MIN_WRAP = 24  # narrowest the wrapping column may be before the table becomes blocks
GAP = 2  # cells between columns

Cell = str | Text


@dataclass(frozen=True)
class Column:
    header: str
    justify: Literal["left", "right"] = "left"
    wrap: bool = False  # at most one column wraps
    bold: bool = False


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def table_width(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> int:
    """Cells needed by the table: whole widths of the fixed columns, MIN_WRAP for the wrapping."""
    total = GAP * (len(columns) - 1)
    for index, column in enumerate(columns):
        if column.wrap:
            widest = max([len(column.header)] + [_text(r[index]).cell_len for r in rows])
            total += min(widest, MIN_WRAP)
        else:
            total += max([len(column.header)] + [_text(r[index]).cell_len for r in rows])
    return total


def print_records(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    indent: int = 0,
) -> None:
    """``rows`` as a table if it fits ``console.width`` (less ``indent``), else as blocks."""
    if not rows:
        return
    if table_width(columns, rows) <= console.width - indent:
        _print_table(console, columns, rows, indent)
    else:
        _print_blocks(console, columns, rows, indent)


def _print_table(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], indent: int
) -> None:
    table = Table(box=None, pad_edge=False, padding=(0, GAP // 2), show_edge=False)
    for index, column in enumerate(columns):
        widest = max([len(column.header)] + [_text(r[index]).cell_len for r in rows])
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            min_width=None if column.wrap else widest,
            style="bold" if column.bold else None,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(_text(cell) for cell in row))
    console.print(Padding(table, (0, 0, 0, indent)) if indent else table)


def _print_blocks(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], indent: int
) -> None:
    for number, row in enumerate(rows):
        if number:
            console.print()
        head = _text(row[0]).copy()
        if columns[0].bold:
            head.stylize("bold")
        console.print(Padding(head, (0, 0, 0, indent)), overflow="fold")
        for column, cell in zip(columns[1:], row[1:], strict=True):
            value = _text(cell)
            if not value.plain:
                continue
            line = Text.assemble((f"{column.header}: ", "dim"), value)
            console.print(Padding(line, (0, 0, 0, indent + 2)), overflow="fold")
