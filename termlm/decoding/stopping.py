"""Stop sequences matched on the text, across token boundaries.

Events are held back while their text could be the start of a stop sequence, so every event that
leaves the matcher carries final text, and the stop string itself is never shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from termlm.decoding.events import TokenEvent


class StopMatcher:
    """Pass token events through; ``hit`` turns True when a stop sequence appears."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending: list[TokenEvent] = []
        self.hit = False

    def push(self, event: TokenEvent) -> list[TokenEvent]:
        """The events whose text is now settled (text cut before the stop when one is hit)."""
        if not self._stops:
            return [event]
        self._pending.append(event)
        buffer = "".join(e.text for e in self._pending)
        found = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        if found:
            self.hit = True
            return self._release(min(found), cut=True)
        safe = len(buffer) - _held_suffix(buffer, self._stops)
        return self._release(safe, cut=False)

    def flush(self) -> list[TokenEvent]:
        """Everything still held (the generation ended without a stop)."""
        out, self._pending = self._pending, []
        return out

    def _release(self, limit: int, *, cut: bool) -> list[TokenEvent]:
        out: list[TokenEvent] = []
        position = 0
        keep: list[TokenEvent] = []
        for event in self._pending:
            end = position + len(event.text)
            if cut:
                text = event.text[: max(0, limit - position)]
                out.append(dataclasses.replace(event, text=text))
            elif end <= limit and not keep:
                out.append(event)
            else:
                keep.append(event)
            position = end
        self._pending = [] if cut else keep
        return out


def _held_suffix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that begins some stop sequence."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:size]):
                best = size
                break
    return best
