"""Saved chats: SQLite (standard library), with each reply's tokens and the newest model states.

The database lives in ``user_data_dir("termlm")/chats.db``; ``TERMLM_DATA_DIR`` overrides the
folder. States are stored as compressed ``np.savez`` archives in a BLOB and read back with
``allow_pickle=False``, so a database can never run code.

Saved states are bounded: a reply's state is kept on disk only while the reply is the newest on
its path. When a later reply is saved below it, its state is dropped (its tokens stay), and it is
read again from its tokens if it is ever needed (``ChatCore.state_before``). A chat's database
grows by its text and token ids, not by a whole model state (a Transformer's key/value cache) at
every message.

A database that cannot be used never stops the chat: the store says why once and goes on in
memory, without saving (``termlm.conversation.fallback``).
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from termlm.conversation.fallback import BUSY_SECONDS, MEMORY, FallbackDatabase
from termlm.conversation.tree import Branch, Conversation, Fork, Message

if TYPE_CHECKING:
    from termlm.runtime.types import State

SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'continue',
    model_name TEXT,
    model_sha256 TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    speaker TEXT,
    text TEXT NOT NULL,
    fed TEXT NOT NULL,
    model_name TEXT,
    model_sha256 TEXT,
    strategy TEXT,
    options TEXT,
    seed INTEGER,
    max_tokens INTEGER,
    stop_reason TEXT,
    tokens INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    state BLOB,
    created REAL NOT NULL,
    parent_id INTEGER,
    shown INTEGER NOT NULL DEFAULT 1,
    token_ids TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages(chat_id, position);
"""

# Columns added after the first release: (name, declaration). A database without them is migrated
# on open; its messages become a straight line (each one's parent is the one before it).
ADDED_COLUMNS = (
    ("parent_id", "INTEGER"),
    ("shown", "INTEGER NOT NULL DEFAULT 1"),
    ("token_ids", "TEXT"),
)

LINK_STRAIGHT = """
UPDATE messages SET parent_id = (
    SELECT before.id FROM messages AS before
    WHERE before.chat_id = messages.chat_id AND before.position < messages.position
    ORDER BY before.position DESC, before.id DESC LIMIT 1
) WHERE parent_id IS NULL AND position > 0
"""

# A message and everything that grew from it (its later messages in every branch).
SUBTREE = """
WITH RECURSIVE below(id) AS (
    SELECT id FROM messages WHERE chat_id = ? AND parent_id IS ? AND position = ?
    UNION ALL
    SELECT m.id FROM messages AS m JOIN below ON m.parent_id = below.id
)
"""

_ROW = tuple[Any, ...]


def data_dir() -> Path:
    override = os.environ.get("TERMLM_DATA_DIR")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("termlm"))


def default_db_path() -> Path:
    return data_dir() / "chats.db"


def state_to_blob(state: State | None) -> bytes | None:
    if state is None:
        return None
    import numpy as np

    buffer = io.BytesIO()
    arrays = {name: np.asarray(value) for name, value in state.items()}
    if any(array.dtype.hasobject for array in arrays.values()):
        raise ValueError("a model state holds Python objects; only numeric arrays can be saved")
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def state_from_blob(blob: bytes | None) -> State | None:
    if blob is None:
        return None
    import numpy as np

    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


@dataclass(frozen=True)
class ChatSummary:
    id: int
    title: str
    mode: str
    model_name: str | None
    updated: float
    messages: int


class ChatStore(FallbackDatabase):
    """Chats and their messages in one SQLite file. Use from one thread (the UI's).

    Never raises for the database itself (``FallbackDatabase``): when the file cannot be used,
    ``problem`` says why and the store keeps working in memory.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        on_problem: Callable[[str], None] | None = None,
        busy_seconds: float = BUSY_SECONDS,
    ) -> None:
        super().__init__(
            path or default_db_path(), on_problem=on_problem, busy_seconds=busy_seconds
        )

    def _prepare(self, db: sqlite3.Connection) -> None:
        from termlm.conversation.compact import mark_compact

        db.executescript(SCHEMA)
        self._migrate(db)
        mark_compact(db)  # a new database never needs the older versions' compaction

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Add the columns an older database lacks; its chats become single-branch trees."""
        have = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
        missing = [(name, kind) for name, kind in ADDED_COLUMNS if name not in have]
        if not missing:
            return
        with db:
            for name, kind in missing:
                db.execute(f"ALTER TABLE messages ADD COLUMN {name} {kind}")
            if any(name == "parent_id" for name, _ in missing):
                db.execute(LINK_STRAIGHT)

    def create_chat(
        self, title: str, mode: str, model_name: str | None, model_sha256: str | None
    ) -> int:
        now = time.time()

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO chats (title, mode, model_name, model_sha256, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title, mode, model_name, model_sha256, now, now),
            )
            return int(cursor.lastrowid or 0)

        return self._write(work)

    def add_message(
        self, chat_id: int, position: int, message: Message, parent_id: int | None = None
    ) -> int:
        """Save a message after ``parent_id`` (default: the message shown at ``position - 1``).

        The new message becomes the branch shown at its position; its siblings stay saved. A model
        reply takes over the saved state: the state of the reply before it on its path is dropped.
        """
        now = time.time()
        blob = state_to_blob(message.state)
        ids = json.dumps(message.token_ids) if message.token_ids else None

        def work(db: sqlite3.Connection) -> int:
            parent = parent_id
            if parent is None and position > 0:
                parent = self._shown_at(db, chat_id, position - 1)
            if self.problem is not None:  # in memory: the open chat's row may be missing
                db.execute(
                    "INSERT OR IGNORE INTO chats (id, title, mode, created, updated)"
                    " VALUES (?, 'chat', 'continue', ?, ?)",
                    (chat_id, now, now),
                )
            db.execute(
                "UPDATE messages SET shown = 0 WHERE chat_id = ? AND parent_id IS ?"
                " AND position = ?",
                (chat_id, parent, position),
            )
            if message.role == "model" and blob is not None:
                _drop_older_state(db, parent)
            cursor = db.execute(
                "INSERT INTO messages (chat_id, position, parent_id, shown, role, speaker, text,"
                " fed, model_name, model_sha256, strategy, options, seed, max_tokens, stop_reason,"
                " tokens, seconds, state, created, token_ids)"
                " VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chat_id,
                    position,
                    parent,
                    message.role,
                    message.speaker,
                    message.text,
                    message.fed,
                    message.model_name,
                    message.model_sha256,
                    message.strategy,
                    json.dumps(message.options, default=str),
                    message.seed,
                    message.max_tokens,
                    message.stop_reason,
                    message.tokens,
                    message.seconds,
                    blob,
                    now,
                    ids,
                ),
            )
            db.execute("UPDATE chats SET updated = ? WHERE id = ?", (now, chat_id))
            return int(cursor.lastrowid or 0)

        message.id = self._write(work)
        return message.id

    def set_message_state(self, message_id: int, state: State | None) -> None:
        """Store the model state after a saved message (read back after it was saved)."""
        blob = state_to_blob(state)
        self._write(
            lambda db: db.execute("UPDATE messages SET state = ? WHERE id = ?", (blob, message_id))
        )

    def show_branch(self, message_id: int) -> None:
        """Mark the branch that starts with ``message_id`` as the one shown at its fork."""

        def work(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT chat_id, parent_id, position FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return
            db.execute(
                "UPDATE messages SET shown = (id = ?) WHERE chat_id = ? AND parent_id IS ?"
                " AND position = ?",
                (message_id, *row),
            )

        self._write(work)

    def delete_after(self, chat_id: int, parent_id: int | None, position: int) -> None:
        """Drop every branch that follows ``parent_id`` (at ``position``), and all below them."""

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                SUBTREE + "DELETE FROM messages WHERE id IN (SELECT id FROM below)",
                (chat_id, parent_id, position),
            )
            db.execute("UPDATE chats SET updated = ? WHERE id = ?", (time.time(), chat_id))

        self._write(work)

    def set_chat_model(self, chat_id: int, model_name: str, model_sha256: str) -> None:
        self._write(
            lambda db: db.execute(
                "UPDATE chats SET model_name = ?, model_sha256 = ? WHERE id = ?",
                (model_name, model_sha256, chat_id),
            )
        )

    def rename_chat(self, chat_id: int, title: str) -> None:
        self._write(
            lambda db: db.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id))
        )

    def delete_chat(self, chat_id: int) -> None:
        self._write(lambda db: db.execute("DELETE FROM chats WHERE id = ?", (chat_id,)))

    def list_chats(self) -> list[ChatSummary]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT c.id, c.title, c.mode, c.model_name, c.updated, COUNT(m.id)"
                " FROM chats c LEFT JOIN messages m ON m.chat_id = c.id"
                " GROUP BY c.id ORDER BY c.updated DESC, c.id DESC"
            ).fetchall()
        )
        return [ChatSummary(*row) for row in rows]

    def load_chat(self, chat_id: int) -> tuple[Conversation, str, str | None, str | None]:
        """(conversation, mode, model name, model sha256) of a saved chat; KeyError if gone."""

        def work(db: sqlite3.Connection) -> tuple[Any, list[_ROW]]:
            chat = db.execute(
                "SELECT title, mode, model_name, model_sha256 FROM chats WHERE id = ?", (chat_id,)
            ).fetchone()
            rows = db.execute(
                "SELECT id, role, speaker, text, fed, model_name, model_sha256, strategy,"
                " options, seed, max_tokens, stop_reason, tokens, seconds, state, parent_id,"
                " shown, position, token_ids"
                " FROM messages WHERE chat_id = ? ORDER BY position, id",
                (chat_id,),
            ).fetchall()
            return chat, rows

        chat, rows = self._read(work)
        if chat is None:
            raise KeyError(chat_id)
        tree = _grow(_children(rows), None, 0)
        conversation = Conversation(
            messages=tree.messages, chat_id=chat_id, title=chat[0], forks=dict(tree.forks)
        )
        return conversation, chat[1], chat[2], chat[3]

    def state_bytes(self) -> int:
        """The bytes of model state the database holds (for measurements)."""
        row = self._read(
            lambda db: db.execute("SELECT COALESCE(SUM(LENGTH(state)), 0) FROM messages").fetchone()
        )
        return int(row[0])

    @staticmethod
    def _shown_at(db: sqlite3.Connection, chat_id: int, position: int) -> int | None:
        """The id of the message shown at ``position`` (following the shown branches)."""
        parent: int | None = None
        for depth in range(position + 1):
            row = db.execute(
                "SELECT id FROM messages WHERE chat_id = ? AND parent_id IS ? AND position = ?"
                " ORDER BY shown DESC, id DESC LIMIT 1",
                (chat_id, parent, depth),
            ).fetchone()
            if row is None:
                return parent
            parent = int(row[0])
        return parent


def _drop_older_state(db: sqlite3.Connection, parent: int | None) -> None:
    """Drop the saved state of the nearest model reply at or above ``parent`` (it has tokens)."""
    seen = 0
    while parent is not None and seen < 10_000:
        row = db.execute(
            "SELECT role, parent_id, token_ids FROM messages WHERE id = ?", (parent,)
        ).fetchone()
        if row is None:
            return
        if row[0] == "model":
            if row[2]:  # only a reply whose tokens are saved can be read again
                db.execute("UPDATE messages SET state = NULL WHERE id = ?", (parent,))
            return
        parent, seen = row[1], seen + 1


def _message(row: _ROW) -> Message:
    return Message(
        id=row[0],
        role=row[1],
        speaker=row[2],
        text=row[3],
        fed=row[4],
        model_name=row[5],
        model_sha256=row[6],
        strategy=row[7],
        options=json.loads(row[8] or "{}"),
        seed=row[9],
        max_tokens=row[10],
        stop_reason=row[11],
        tokens=row[12],
        seconds=row[13],
        state=state_from_blob(row[14]),
        token_ids=[int(i) for i in json.loads(row[18])] if row[18] else [],
    )


def _children(rows: list[_ROW]) -> dict[int | None, list[_ROW]]:
    """parent id -> its child rows, oldest first (the order the branches were made in)."""
    children: dict[int | None, list[_ROW]] = {}
    for row in rows:
        children.setdefault(row[15], []).append(row)
    return children


def _grow(children: dict[int | None, list[_ROW]], parent: int | None, position: int) -> Branch:
    """The shown path below ``parent``, with a Fork wherever a message has several children."""
    messages: list[Message] = []
    forks: dict[int, Fork] = {}
    while True:
        kids = children.get(parent, [])
        if not kids:
            return Branch(messages, forks)
        if len(kids) == 1:
            messages.append(_message(kids[0]))
            parent, position = kids[0][0], position + 1
            continue
        branches = []
        for kid in kids:
            rest = _grow(children, kid[0], position + 1)
            branches.append(Branch([_message(kid), *rest.messages], rest.forks))
        shown = [index for index, kid in enumerate(kids) if kid[16]]
        current = shown[-1] if shown else len(kids) - 1
        forks[position] = Fork(branches, current)
        messages.extend(branches[current].messages)
        forks.update(branches[current].forks)
        return Branch(messages, forks)


__all__ = ["MEMORY", "ChatStore", "ChatSummary", "state_from_blob", "state_to_blob"]
