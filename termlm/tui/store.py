"""Saved chats: SQLite (standard library) with the model state after each message.

The database lives in ``user_data_dir("termlm")/chats.db``; ``TERMLM_DATA_DIR`` overrides the
folder. States are stored as ``np.savez`` archives in a BLOB and read back with
``allow_pickle=False``, so a database can never run code.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from termlm.tui.conversation import Branch, Conversation, Fork, Message

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
    shown INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages(chat_id, position);
"""

# Columns added after the first release: (name, declaration). A database without them is migrated
# on open; its messages become a straight line (each one's parent is the one before it).
ADDED_COLUMNS = (("parent_id", "INTEGER"), ("shown", "INTEGER NOT NULL DEFAULT 1"))

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
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
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


class ChatStore:
    """Chats and their messages in one SQLite file. Use from one thread (the UI's)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns an older database lacks; its chats become single-branch trees."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        missing = [(name, kind) for name, kind in ADDED_COLUMNS if name not in have]
        if not missing:
            return
        with self._db:
            for name, kind in missing:
                self._db.execute(f"ALTER TABLE messages ADD COLUMN {name} {kind}")
            self._db.execute(LINK_STRAIGHT)

    def close(self) -> None:
        self._db.close()

    def create_chat(
        self, title: str, mode: str, model_name: str | None, model_sha256: str | None
    ) -> int:
        now = time.time()
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO chats (title, mode, model_name, model_sha256, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title, mode, model_name, model_sha256, now, now),
            )
        return int(cursor.lastrowid or 0)

    def add_message(
        self, chat_id: int, position: int, message: Message, parent_id: int | None = None
    ) -> int:
        """Save a message after ``parent_id`` (default: the message shown at ``position - 1``).

        The new message becomes the branch shown at its position; its siblings stay saved.
        """
        now = time.time()
        if parent_id is None and position > 0:
            parent_id = self._shown_at(chat_id, position - 1)
        with self._db:
            self._db.execute(
                "UPDATE messages SET shown = 0 WHERE chat_id = ? AND parent_id IS ?"
                " AND position = ?",
                (chat_id, parent_id, position),
            )
            cursor = self._db.execute(
                "INSERT INTO messages (chat_id, position, parent_id, shown, role, speaker, text,"
                " fed, model_name, model_sha256, strategy, options, seed, max_tokens, stop_reason,"
                " tokens, seconds, state, created)"
                " VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chat_id,
                    position,
                    parent_id,
                    message.role,
                    message.speaker,
                    message.text,
                    message.fed,
                    message.model_name,
                    message.model_sha256,
                    message.strategy,
                    json.dumps(message.options),
                    message.seed,
                    message.max_tokens,
                    message.stop_reason,
                    message.tokens,
                    message.seconds,
                    state_to_blob(message.state),
                    now,
                ),
            )
            self._touch(chat_id, now)
        message.id = int(cursor.lastrowid or 0)
        return message.id

    def set_message_state(self, message_id: int, state: State | None) -> None:
        """Store the model state after a saved message (read back after it was saved)."""
        with self._db:
            self._db.execute(
                "UPDATE messages SET state = ? WHERE id = ?", (state_to_blob(state), message_id)
            )

    def show_branch(self, message_id: int) -> None:
        """Mark the branch that starts with ``message_id`` as the one shown at its fork."""
        with self._db:
            row = self._db.execute(
                "SELECT chat_id, parent_id, position FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return
            self._db.execute(
                "UPDATE messages SET shown = (id = ?) WHERE chat_id = ? AND parent_id IS ?"
                " AND position = ?",
                (message_id, *row),
            )

    def delete_after(self, chat_id: int, parent_id: int | None, position: int) -> None:
        """Drop every branch that follows ``parent_id`` (at ``position``), and all below them."""
        with self._db:
            self._db.execute(
                SUBTREE + "DELETE FROM messages WHERE id IN (SELECT id FROM below)",
                (chat_id, parent_id, position),
            )
            self._touch(chat_id, time.time())

    def delete_messages(self, chat_id: int, from_position: int) -> None:
        """Drop the messages at and after a position (undo, regenerate)."""
        with self._db:
            self._db.execute(
                "DELETE FROM messages WHERE chat_id = ? AND position >= ?", (chat_id, from_position)
            )
            self._touch(chat_id, time.time())

    def set_chat_model(self, chat_id: int, model_name: str, model_sha256: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE chats SET model_name = ?, model_sha256 = ? WHERE id = ?",
                (model_name, model_sha256, chat_id),
            )

    def rename_chat(self, chat_id: int, title: str) -> None:
        with self._db:
            self._db.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id))

    def delete_chat(self, chat_id: int) -> None:
        with self._db:
            self._db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    def list_chats(self) -> list[ChatSummary]:
        rows = self._db.execute(
            "SELECT c.id, c.title, c.mode, c.model_name, c.updated, COUNT(m.id)"
            " FROM chats c LEFT JOIN messages m ON m.chat_id = c.id"
            " GROUP BY c.id ORDER BY c.updated DESC, c.id DESC"
        ).fetchall()
        return [ChatSummary(*row) for row in rows]

    def load_chat(self, chat_id: int) -> tuple[Conversation, str, str | None, str | None]:
        """(conversation, mode, model name, model sha256) of a saved chat."""
        chat = self._db.execute(
            "SELECT title, mode, model_name, model_sha256 FROM chats WHERE id = ?", (chat_id,)
        ).fetchone()
        if chat is None:
            raise KeyError(chat_id)
        rows = self._db.execute(
            "SELECT id, role, speaker, text, fed, model_name, model_sha256, strategy, options,"
            " seed, max_tokens, stop_reason, tokens, seconds, state, parent_id, shown, position"
            " FROM messages WHERE chat_id = ? ORDER BY position, id",
            (chat_id,),
        ).fetchall()
        tree = _grow(_children(rows), None, 0)
        conversation = Conversation(
            messages=tree.messages, chat_id=chat_id, title=chat[0], forks=dict(tree.forks)
        )
        return conversation, chat[1], chat[2], chat[3]

    def _touch(self, chat_id: int, now: float) -> None:
        self._db.execute("UPDATE chats SET updated = ? WHERE id = ?", (now, chat_id))

    def _shown_at(self, chat_id: int, position: int) -> int | None:
        """The id of the message shown at ``position`` (following the shown branches)."""
        parent: int | None = None
        for depth in range(position + 1):
            row = self._db.execute(
                "SELECT id FROM messages WHERE chat_id = ? AND parent_id IS ? AND position = ?"
                " ORDER BY shown DESC, id DESC LIMIT 1",
                (chat_id, parent, depth),
            ).fetchone()
            if row is None:
                return parent
            parent = int(row[0])
        return parent


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
