"""Colour or not: NO_COLOR (https://no-color.org), --no-color, and whether output is a terminal.

`termlm --no-color ...` (anywhere on the command line) sets NO_COLOR for the whole process, so
rich consoles (help, tables, progress bars) and Textual honour it as they honour the variable.
"""

from __future__ import annotations

import os
from typing import Any, TextIO

FLAG = "--no-color"


def colour_allowed() -> bool:
    """False when NO_COLOR is set to anything but the empty string."""
    return not os.environ.get("NO_COLOR")


def is_terminal(stream: TextIO | None) -> bool:
    """Whether ``stream`` is a terminal (not a pipe, a file, a closed or missing stream)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def use_colour(stream: TextIO) -> bool:
    """Colour for ``stream``: allowed, and the stream is a terminal."""
    return colour_allowed() and is_terminal(stream)


def styled(text: str, stream: TextIO, **style: Any) -> str:
    """``text`` with click-style colours (fg=..., bold=...) when ``stream`` takes colour."""
    import typer

    return typer.style(text, **style) if use_colour(stream) else text


def take_no_color_flag(args: list[str]) -> list[str]:
    """Remove every --no-color before a `--` and set NO_COLOR=1 if there was one."""
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != FLAG]
    if len(kept) != end:
        os.environ["NO_COLOR"] = "1"
    return kept + args[end:]
