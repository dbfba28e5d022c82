"""A path box that completes file and folder names as you type (Tab takes the completion)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.suggester import Suggester
from textual.widgets import Input

MAX_LISTED = 200  # a huge folder is listed in part: completion stays instant


def path_matches(value: str, limit: int = MAX_LISTED) -> list[str]:
    """What ``value`` may complete to: entries of its folder starting with its last part,
    folders ending with a slash, hidden entries only when asked for, sorted."""
    expanded = os.path.expanduser(value)
    folder, prefix = os.path.split(expanded)
    where = Path(folder or ".")
    try:
        entries = []
        with os.scandir(where) as found:
            for index, entry in enumerate(found):
                if index >= limit * 10:
                    break
                if entry.name.startswith(prefix) and (
                    prefix.startswith(".") or not entry.name.startswith(".")
                ):
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    entries.append(entry.name + ("/" if is_dir else ""))
    except OSError:
        return []
    head = value[: len(value) - len(prefix)] if prefix else value
    return [head + name for name in sorted(entries)[:limit]]


def common_prefix(names: list[str]) -> str:
    """The characters every name starts with (a completion may end inside a name)."""
    if not names:
        return ""
    first, last = min(names), max(names)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


class PathSuggester(Suggester):
    """The longest completion all matches share (one match: the whole name)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        matches = path_matches(value)
        best = common_prefix(matches)
        return best if len(best) > len(value) else None


class PathInput(Input):
    """Tab completes (as far as the matches agree); with nothing to complete, Tab moves on."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete", show=False, priority=True)
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(suggester=PathSuggester(), **kwargs)  # type: ignore[arg-type]

    def action_complete(self) -> None:
        best = common_prefix(path_matches(self.value)) if self.value else ""
        if len(best) > len(self.value):
            self.value = best
            self.cursor_position = len(best)
        else:
            self.screen.focus_next()
