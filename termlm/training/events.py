"""`termlm train --events`: the run's progress as JSON lines on stdout, for other programs.

One object per line, each with an ``"event"`` field: ``say`` (a line of what training is doing),
``setup`` (the run folder, model and plan), ``start``, ``progress`` (at most every
``PROGRESS_SECONDS``), ``validation`` (a metrics.jsonl record), and one of ``end`` (the result),
``interrupted`` (a resumable checkpoint) or ``error`` last. docs/json.md lists the fields.
Torch-free: the chat's Train view reads this stream without importing the trainer.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

PROGRESS_SECONDS = 0.5

_sink: TextIO | None = None
_last_progress = 0.0


def enabled() -> bool:
    return _sink is not None


def _plain(value: Any) -> Any:
    """JSON-safe: non-finite floats become null, paths and other objects their text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def emit(event: str, **fields: Any) -> None:
    """Write one event line (nothing when the stream is off)."""
    if _sink is None:
        return
    line = json.dumps({"event": event, **_plain(fields)}, ensure_ascii=False, allow_nan=False)
    try:
        _sink.write(line + "\n")
        _sink.flush()
    except (BrokenPipeError, ValueError):  # the reader went away: training goes on regardless
        pass


def progress(**fields: Any) -> None:
    """A progress tick, at most every PROGRESS_SECONDS."""
    global _last_progress
    if _sink is None:
        return
    now = time.monotonic()
    if now - _last_progress < PROGRESS_SECONDS:
        return
    _last_progress = now
    emit("progress", **fields)


@contextlib.contextmanager
def streaming(on: bool, stream: TextIO | None = None) -> Iterator[None]:
    """With ``on``: events go to ``stream`` (stdout); the last one says how the command ended."""
    global _sink, _last_progress
    if not on:
        yield
        return
    from termlm.errors import TermlmError

    _sink, _last_progress = stream or sys.stdout, 0.0
    try:
        yield
    except TermlmError as exc:
        emit("error", kind=type(exc).__name__, message=exc.message, hint=exc.hint)
        raise
    except KeyboardInterrupt:
        emit("error", kind="interrupted", message="interrupted before training began", hint=None)
        raise
    finally:
        _sink = None


def with_events(command: Callable[..., None]) -> Callable[..., None]:
    """A CLI command whose ``events`` flag turns the stream on for its whole run."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("events"):
            stoppable_by_sigint()
            stops_with_parent()
        with streaming(bool(kwargs.get("events"))):
            command(*args, **kwargs)

    return run


def stoppable_by_sigint() -> None:
    """A run driven by another program is stopped with SIGINT: a process started from a
    background job inherits SIGINT ignored, and would then never stop (nor keep a checkpoint)."""
    import signal
    import threading

    on_main = threading.current_thread() is threading.main_thread()
    if on_main and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


PARENT_POLL_SECONDS = 0.5


def stops_with_parent(poll: float = PARENT_POLL_SECONDS) -> None:
    """When the program that started this run ends (closed, killed), stop the run as Ctrl-C does,
    keeping a resumable checkpoint: a training nobody watches would go on using the machine's
    cores for the rest of its budget. A parent's end shows as a new parent process id."""
    import os
    import signal
    import threading

    parent = os.getppid()
    if parent <= 1:  # already on its own: nothing to follow
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="termlm-parent-watch", daemon=True).start()
