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

import gc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.widgets import TextArea

UI_SHARE = 0.05  # while a reply streams, drawing it may take this share of the process's CPU time
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


class HeldBack:
    """What the UI does not do while a reply streams, so that the model keeps its time.

    The prompt's cursor stays lit (a blink is a repaint, taken from the model like a frame), and
    the objects that existed when the reply began are left out of the garbage collector's passes
    until it ends (``gc.freeze``): a full pass over the app's and the model's objects costs tens
    of milliseconds, and a long reply's allocations would set one off. ``gc.unfreeze`` gives
    them back to the collector at the end, so nothing is kept that would otherwise be freed.
    """

    def __init__(self) -> None:
        self.blink: bool | None = None  # while held: whether the cursor blinked before

    @property
    def holding(self) -> bool:
        return self.blink is not None

    def hold(self, prompt: TextArea) -> None:
        if self.blink is None:
            self.blink, prompt.cursor_blink = prompt.cursor_blink, False
            gc.freeze()

    def release(self, prompt: TextArea | None) -> None:
        """Give back what ``hold`` took (``prompt`` None: the screen is going away)."""
        if self.blink is not None:
            if prompt is not None:
                prompt.cursor_blink = self.blink
            self.blink = None
            gc.unfreeze()


__all__ = ["MAX_GAP", "UI_SHARE", "FramePacer", "HeldBack"]
