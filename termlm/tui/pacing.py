"""How often a streaming reply is drawn: a frame budget for the UI thread.

The reply's thread and the UI thread share one interpreter lock, so every millisecond the UI spends
laying out and painting the transcript is a millisecond the model does not run. A ``FramePacer``
lets a frame be drawn only while the UI thread's CPU time since the previous frame stays within
``share`` of the wall time since then: a cheap frame (a short reply, a slow model) is drawn at
every tick, an expensive one (a long reply wrapped again at every frame) is drawn less often, and
the model keeps at least ``1 - share`` of the time whatever the size of the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

UI_SHARE = 0.08  # while a reply streams, drawing it may take this share of one core


class FramePacer:
    """Says whether the next frame is due; ``cpu`` is the UI thread's CPU clock."""

    def __init__(
        self,
        share: float = UI_SHARE,
        *,
        cpu: Callable[[], float] = time.thread_time,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share = share
        self.cpu = cpu
        self.wall = wall
        self.frames = 0  # frames drawn since ``start``
        self.skipped = 0  # ticks that drew nothing to stay within the budget
        self._cpu_mark = 0.0
        self._wall_mark = 0.0
        self._first = True

    def start(self) -> None:
        """A reply begins: the first frame is due at once."""
        self.frames = self.skipped = 0
        self._cpu_mark, self._wall_mark = self.cpu(), self.wall()
        self._first = True

    def due(self) -> bool:
        """Whether a frame may be drawn now (it is counted as drawn if so)."""
        cpu, wall = self.cpu(), self.wall()
        spent = cpu - self._cpu_mark
        if not self._first and spent > self.share * (wall - self._wall_mark):
            self.skipped += 1
            return False
        self._first = False
        self.frames += 1
        self._cpu_mark, self._wall_mark = cpu, wall
        return True


__all__ = ["UI_SHARE", "FramePacer"]
