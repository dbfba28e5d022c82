"""`termlm generate` takes events from its worker thread in batches, in order, errors included."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from termlm.cli.generate import events_in_thread


def test_every_event_arrives_in_order() -> None:
    def start() -> Iterator[int]:
        yield from range(10_000)

    got = list(events_in_thread(start, threading.Event()))  # type: ignore[arg-type]
    assert got == list(range(10_000))


def test_a_worker_error_is_raised_here_after_the_events_before_it() -> None:
    def start() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk on fire")

    got: list[int] = []
    with pytest.raises(OSError, match="disk on fire"):
        for item in events_in_thread(start, threading.Event()):  # type: ignore[arg-type]
            got.append(item)
    assert got == [1, 2]


def test_a_slow_worker_still_streams() -> None:
    """An event reaches the reader while the worker is still busy (no wait for a full batch)."""
    release = threading.Event()

    def start() -> Iterator[str]:
        yield "first"
        assert release.wait(30)
        yield "second"

    events = events_in_thread(start, threading.Event())  # type: ignore[arg-type]
    assert next(events) == "first"  # arrives though the worker now waits
    release.set()
    assert list(events) == ["second"]
