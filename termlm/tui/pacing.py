"""How often a streaming reply is drawn: a frame budget for the UI thread.

The reply's thread and the UI thread share one interpreter lock, so every millisecond the UI spends
laying out and painting the transcript is a millisecond the model does not run. A ``FramePacer``
lets a frame be drawn only while the UI thread's CPU time since the previous frame stays within
``share`` of the whole process's CPU time since then: a cheap frame (a short reply, a slow model) is
drawn at every tick, an expensive one (a long reply wrapped again at every frame) less often, and
the model keeps at least ``1 - share`` of what the process gets, however loaded the machine is (a
budget in wall time would let the UI take most of a starved process). Whatever it costs, a frame is
drawn at least every ``max_gap`` seconds, so a reply never looks stuck.
"""

from __future__ import annotations

import time
from collections.abc import Callable

UI_SHARE = 0.1  # while a reply streams, drawing it may take this share of the process's CPU time
MAX_GAP = 0.5  # seconds: the longest a streaming reply goes without being drawn


class FramePacer:
    """Says whether the next frame is due. ``cpu``: the UI thread's CPU clock; ``total``: the
    process's CPU clock (every thread); ``wall``: a monotonic clock."""

    def __init__(
        self,
        share: float = UI_SHARE,
        *,
        max_gap: float = MAX_GAP,
        cpu: Callable[[], float] = time.thread_time,
        total: Callable[[], float] = time.process_time,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share = share
        self.max_gap = max_gap
        self.cpu = cpu
        self.total = total
        self.wall = wall
        self.frames = 0  # frames drawn since ``start``
        self.skipped = 0  # ticks that drew nothing to stay within the budget
        self._marks = (0.0, 0.0, 0.0)
        self._first = True

    def start(self) -> None:
        """A reply begins: the first frame is due at once."""
        self.frames = self.skipped = 0
        self._marks = (self.cpu(), self.total(), self.wall())
        self._first = True

    def due(self) -> bool:
        """Whether a frame may be drawn now (it is counted as drawn if so)."""
        now = (self.cpu(), self.total(), self.wall())
        ui, process, gap = (a - b for a, b in zip(now, self._marks, strict=True))
        waiting = not self._first and gap < self.max_gap
        if waiting and ui > self.share * process:
            self.skipped += 1
            return False
        self._first = False
        self.frames += 1
        self._marks = now
        return True


__all__ = ["MAX_GAP", "UI_SHARE", "FramePacer"]
