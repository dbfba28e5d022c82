"""A SQLite database that never stops the chat: on a fault it goes on in memory and says why.

A database that cannot be used (read-only, locked by another program past the busy timeout,
corrupted, or a data folder that is a file) never raises out of the store: ``problem`` says why
(one line, with the path), ``on_problem`` is called once with it, and the store keeps working in
an in-memory copy (nothing more is saved; what exists in memory is not lost).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

# How long a write waits for another program's lock before giving up. The chat writes on its UI
# thread, so this is how long the screen can freeze, once: termlm's own writes hold the lock
# for milliseconds, and a lock held longer (a program keeping a transaction open) is not let go
# in the next second or two either.
BUSY_SECONDS = 0.5
MEMORY = Path(":memory:")  # a store that saves nothing (the demo)
_T = TypeVar("_T")


class FallbackDatabase:
    """One SQLite connection, used from one thread; subclasses say how a database is prepared."""

    def __init__(
        self,
        path: Path,
        *,
        on_problem: Callable[[str], None] | None = None,
        busy_seconds: float = BUSY_SECONDS,
    ) -> None:
        self.path = path
        self.problem: str | None = None  # why chats are not being saved (None: they are)
        self.on_problem = on_problem
        self.busy_seconds = busy_seconds
        try:
            if self.path != MEMORY:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect(str(self.path))
        except (OSError, sqlite3.Error) as exc:
            self._db = self._connect(":memory:")
            self._give_up(exc, copy=False)

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Create the tables (and migrate an older database); called on every new connection."""

    def _connect(self, where: str) -> sqlite3.Connection:
        db = sqlite3.connect(where, timeout=self.busy_seconds)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            self._prepare(db)
        except BaseException:
            db.close()
            raise
        return db

    @property
    def saving(self) -> bool:
        return self.problem is None

    def _give_up(self, exc: BaseException, *, copy: bool = True) -> None:
        """Go on in memory: keep what can still be read (the open chat needs its rows)."""
        self.problem = f"chats are not being saved: {self.path}: {reason(exc)}"
        memory = sqlite3.connect(":memory:")
        if copy:
            try:
                self._copy_into(memory)
            except sqlite3.Error:
                memory.close()
                memory = sqlite3.connect(":memory:")
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        memory.execute("PRAGMA foreign_keys = ON")
        self._prepare(memory)
        self._db = memory
        if self.on_problem is not None:
            self.on_problem(self.problem)

    def _copy_into(self, memory: sqlite3.Connection) -> None:
        """Copy the database into ``memory``, waiting at most the busy timeout for another
        program's lock (``backup`` alone would retry for as long as the lock is held)."""
        deadline = time.monotonic() + self.busy_seconds

        def progress(status: int, remaining: int, total: int) -> None:
            if (
                status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                and time.monotonic() >= deadline
            ):
                raise sqlite3.OperationalError("database is locked")

        self._db.backup(memory, progress=progress, sleep=0.05)

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in a transaction; on a database fault, go on in memory and run it there."""
        try:
            with self._db:
                return work(self._db)
        except sqlite3.IntegrityError:
            raise  # a programming error (a row that is gone), not a fault of the file
        except sqlite3.Error as exc:
            if self.problem is not None:
                raise
            self._give_up(exc)
        with self._db:
            return work(self._db)

    def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            return work(self._db)
        except sqlite3.Error as exc:
            if self.problem is not None:
                raise
            self._give_up(exc, copy=False)
        return work(self._db)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


def reason(exc: BaseException) -> str:
    """A database fault in words, with what to do."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return f"{exc.filename} is a file, not a folder; point TERMLM_DATA_DIR at a folder"
    if "locked" in text:
        return "the database is locked by another program; close it and restart the chat"
    if "readonly" in text or "read-only" in text:
        return "the database is read-only; make it writable and restart the chat"
    if "not a database" in text or "malformed" in text:
        return f"the database is damaged ({text}); move it away to start a new one"
    return text


__all__ = ["BUSY_SECONDS", "MEMORY", "FallbackDatabase", "reason"]
