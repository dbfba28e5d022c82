"""A generation run in a worker thread, handed to this thread event by event; never left running.

The process must not end while the worker is inside onnxruntime (the runtime's threads would be
torn down under it: `terminate called without an active exception`, exit 134). Whatever ends the
reading here (the last event, a write error, Ctrl-C), leaving the ``with`` block cancels the run
and joins the thread. Standard library only.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
JOIN_SECONDS = 30.0  # the longest a cancelled run may take to reach its next step
_END = object()


class EventWorker(Generic[T]):
    """Iterate ``start()`` in a daemon thread; iterate the worker here to get its items.

    Ctrl-C while waiting here sets ``cancel`` (the run ends at its next step, with its last
    event); a second Ctrl-C raises KeyboardInterrupt at once. An exception in the worker is
    raised here. ``close()`` (and leaving the ``with`` block) sets ``cancel`` and joins.
    """

    def __init__(
        self,
        start: Callable[[], Iterator[T]],
        cancel: threading.Event,
        *,
        name: str = "termlm-generate",
    ) -> None:
        self.cancel = cancel
        self._start = start
        self._items: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    def _work(self) -> None:
        try:
            for item in self._start():
                self._items.put(item)
        except BaseException as exc:  # handed to the reading thread, raised there
            self._items.put(exc)
        finally:
            self._items.put(_END)

    def start(self) -> None:
        if self._thread.ident is None:
            self._thread.start()

    def __enter__(self) -> EventWorker[T]:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        self.start()
        while True:
            try:
                item = self._items.get(timeout=0.1)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                if self.cancel.is_set():
                    raise
                self.cancel.set()
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = JOIN_SECONDS) -> bool:
        """Cancel the run and wait for the thread to end; True once it has ended."""
        self.cancel.set()
        if self._thread.ident is None:
            return True  # never started
        self._thread.join(timeout)
        return not self._thread.is_alive()
