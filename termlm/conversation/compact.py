"""Compact a chats database saved by an older version: its states become what the store keeps now.

Older versions stored the model state after every message, as an uncompressed ``np.savez``
archive (for a Transformer, its whole key/value cache at every message). The store now keeps a
reply's state only while the reply is the newest on its path, compressed. ``compact`` brings an
older database there without changing what any chat continues with:

* a prompt's state is dropped (nothing reads it: a reply is always fed on the state of the reply
  before it);
* a reply's state is dropped when a later reply grew below it *and* its token ids are saved, so it
  is read again from them exactly as it was generated (``ChatCore.state_before``);
* every other state is kept, compressed again without loss (the arrays read back bit for bit).

It runs on its own connection (a background thread of the chat may call it while the chat uses
the database), a few rows per transaction: each row changes at once or not at all, a chat that
reads it meanwhile sees either form, and an interrupted run goes on at the next open. When every
row is done it marks the database (``PRAGMA user_version``) and gives the space back (VACUUM).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from termlm.conversation.fallback import BUSY_SECONDS

COMPACTED = 1  # ``PRAGMA user_version`` of a database whose states are compact
BATCH = 16  # rows per transaction: short, so the chat's own writes never wait long

# A reply with a later reply below it, in any branch.
_HAS_LATER_REPLY = """
WITH RECURSIVE below(id, role) AS (
    SELECT id, role FROM messages WHERE parent_id = ?
    UNION ALL
    SELECT m.id, m.role FROM messages AS m JOIN below ON m.parent_id = below.id
)
SELECT EXISTS (SELECT 1 FROM below WHERE role = 'model')
"""


@dataclass(frozen=True)
class Compaction:
    """What ``compact`` did: rows looked at, states dropped and kept, bytes of state before and
    after, and the file's size before and after."""

    rows: int
    dropped: int
    recompressed: int
    state_before: int
    state_after: int
    file_before: int
    file_after: int

    def summary(self) -> str:
        return (
            f"saved chats compacted: model states {_size(self.state_before)} ->"
            f" {_size(self.state_after)}, the file {_size(self.file_before)} ->"
            f" {_size(self.file_after)}"
        )


def needs_compaction(path: Path) -> bool:
    """Whether the database at ``path`` still holds states in an older version's form."""
    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_SECONDS)
    except sqlite3.Error:
        return False
    try:
        if int(db.execute("PRAGMA user_version").fetchone()[0]) >= COMPACTED:
            return False
        row = db.execute("SELECT EXISTS (SELECT 1 FROM messages WHERE state IS NOT NULL)")
        return bool(row.fetchone()[0])
    except sqlite3.Error:  # no messages table yet, or not a database: the store says so
        return False
    finally:
        db.close()


def mark_compact(db: sqlite3.Connection) -> None:
    """A new database holds only compact states: mark it so that it is never scanned."""
    if int(db.execute("PRAGMA user_version").fetchone()[0]) < COMPACTED:
        has_states = db.execute("SELECT EXISTS (SELECT 1 FROM messages WHERE state IS NOT NULL)")
        if not has_states.fetchone()[0]:
            db.execute(f"PRAGMA user_version = {COMPACTED}")


def compact(path: Path, progress: Callable[[int, int], None] | None = None) -> Compaction:
    """Compact the states of the database at ``path``; ``progress(done, total)`` after each batch.

    Call it after the store has opened the database once (its columns are then current).
    """
    from termlm.conversation.store import state_from_blob, state_to_blob

    file_before = path.stat().st_size
    db = sqlite3.connect(str(path), timeout=BUSY_SECONDS, isolation_level=None)
    try:
        ids = [
            int(row[0])
            for row in db.execute("SELECT id FROM messages WHERE state IS NOT NULL ORDER BY id")
        ]
        dropped = recompressed = before = after = 0
        for start in range(0, len(ids), BATCH):
            db.execute("BEGIN IMMEDIATE")  # read and write each row under one lock
            try:
                for message_id in ids[start : start + BATCH]:
                    row = db.execute(
                        "SELECT role, token_ids, state FROM messages WHERE id = ?", (message_id,)
                    ).fetchone()
                    if row is None or row[2] is None:
                        continue  # deleted or changed by the chat meanwhile
                    role, token_ids, blob = row
                    before += len(blob)
                    later = db.execute(_HAS_LATER_REPLY, (message_id,)).fetchone()[0]
                    if role != "model" or (token_ids and later):
                        db.execute("UPDATE messages SET state = NULL WHERE id = ?", (message_id,))
                        dropped += 1
                        continue
                    again = state_to_blob(state_from_blob(blob)) or b""
                    if len(again) < len(blob):
                        db.execute(
                            "UPDATE messages SET state = ? WHERE id = ?", (again, message_id)
                        )
                        recompressed += 1
                        blob = again
                    after += len(blob)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if progress is not None:
                progress(min(start + BATCH, len(ids)), len(ids))
        db.execute(f"PRAGMA user_version = {COMPACTED}")
        with contextlib.suppress(sqlite3.OperationalError):  # busy: the free pages are reused
            db.execute("VACUUM")  # the space goes back to the file system
    finally:
        db.close()
    return Compaction(
        rows=len(ids),
        dropped=dropped,
        recompressed=recompressed,
        state_before=before,
        state_after=after,
        file_before=file_before,
        file_after=path.stat().st_size,
    )


def _size(count: int) -> str:
    if count >= 1 << 20:
        return f"{count / (1 << 20):.1f} MB"
    if count >= 1 << 10:
        return f"{count / (1 << 10):.0f} kB"
    return f"{count} bytes"


__all__ = ["COMPACTED", "Compaction", "compact", "mark_compact", "needs_compaction"]
