"""The clock a training budget (`--minutes`) is counted on.

``wall``: seconds as a person waits for them. ``cpu``: this process's CPU seconds (all of its
threads), so that runs started side by side on a busy machine get the same amount of compute."""

from __future__ import annotations

import time
from collections.abc import Callable

CLOCKS = ("wall", "cpu")


def budget_clock(kind: str) -> Callable[[], float]:
    """A function returning seconds on the named clock (only differences are meaningful)."""
    if kind == "cpu":
        return lambda: time.process_time()
    return lambda: time.perf_counter()
