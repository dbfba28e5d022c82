"""Chats saved by an older version (a whole, uncompressed state after every message) are compacted
in place, and a reopened chat continues exactly as it did before."""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from termlm.conversation.chat import ChatCore
from termlm.conversation.compact import compact, needs_compaction
from termlm.conversation.demo import FakeEngine
from termlm.conversation.settings import Settings
from termlm.conversation.store import ChatStore, state_from_blob
from termlm.runtime.types import State

# The first released schema: no branches, no token ids; a state after every message.
FIRST_SCHEMA = """
CREATE TABLE chats (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, mode TEXT NOT NULL DEFAULT 'continue',
    model_name TEXT, model_sha256 TEXT, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, role TEXT NOT NULL, speaker TEXT, text TEXT NOT NULL,
    fed TEXT NOT NULL, model_name TEXT, model_sha256 TEXT, strategy TEXT, options TEXT,
    seed INTEGER, max_tokens INTEGER, stop_reason TEXT, tokens INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0, state BLOB, created REAL NOT NULL
);
CREATE INDEX messages_by_chat ON messages(chat_id, position);
"""


def old_blob(state: State) -> bytes:
    """A state as the older versions stored it: an uncompressed np.savez archive."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in state.items()})  # type: ignore[arg-type]
    return buffer.getvalue()


def fake_state(seen: int) -> State:
    """The scripted engine's state, with a cache the size of a small Transformer's."""
    cache = np.zeros((2, 4, 64, 32), dtype=np.float32)
    cache[:, :, : seen % 64] = 0.25
    return {"seen": np.array([[seen]], dtype=np.int64), "cache": cache}


def old_database(path: Path, turns: list[tuple[str, str]]) -> list[State]:
    """A database made the first version's way: every message with its whole state."""
    db = sqlite3.connect(path)
    db.executescript(FIRST_SCHEMA)
    now = time.time()
    db.execute(
        "INSERT INTO chats (id, title, mode, created, updated) VALUES (1, 'old', 'continue', ?, ?)",
        (now, now),
    )
    seen, states = 0, []
    for position, (prompt, reply) in enumerate(turns):
        for offset, (role, text) in enumerate((("user", prompt), ("model", reply))):
            seen += len(text)
            state = fake_state(seen)
            states.append(state)
            db.execute(
                "INSERT INTO messages (chat_id, position, role, text, fed, strategy, options,"
                " tokens, state, created) VALUES (1, ?, ?, ?, ?, 'greedy', '{}', ?, ?, ?)",
                (2 * position + offset, role, text, text, len(text), old_blob(state), now),
            )
    db.commit()
    db.close()
    return states


def test_an_old_database_is_compacted_and_continues_exactly(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    states = old_database(path, [("hello ", "world "), ("again ", "and again "), ("more ", "end")])
    ChatStore(path).close()  # the store adds the newer columns first
    assert needs_compaction(path)
    seen: list[tuple[int, int]] = []
    report = compact(path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (6, 6)
    assert report.rows == 6 and report.dropped == 3  # the prompts' states, which nothing reads
    assert report.state_after * 5 < report.state_before
    assert report.file_after < report.file_before
    assert not needs_compaction(path)

    db = sqlite3.connect(path)
    rows = db.execute("SELECT role, state FROM messages ORDER BY position").fetchall()
    for (role, blob), state in zip(rows, states, strict=True):
        if role == "user":
            assert blob is None
            continue
        again = state_from_blob(blob)  # the replies' states, bit for bit
        assert again is not None and set(again) == set(state)
        assert all(np.array_equal(again[k], state[k]) for k in state)
        assert all(again[k].dtype == state[k].dtype for k in state)
    db.close()

    engine = FakeEngine()
    core = ChatCore(engine, ChatStore(path), Settings(seed=5, max_tokens=20))
    core.model = engine.load(None)
    core.open_chat(1)
    assert [m.text for m in core.conversation.messages][-2:] == ["more ", "end"]
    job = core.send("next ", {})
    job.wait(10)
    assert engine.calls[-1]["state"] is not None
    fed = engine.calls[-1]["state"]
    assert all(np.array_equal(fed[k], states[-1][k]) for k in states[-1])  # as before
    core.close()


def test_a_new_database_is_never_scanned(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    engine = FakeEngine()
    core = ChatCore(engine, ChatStore(path), Settings(seed=5, max_tokens=20))
    core.model = engine.load(None)
    job = core.send("hello", {})
    job.wait(10)
    _, result = job.take(job.drain())
    assert result is not None
    core.finish(job, result)
    core.close()
    assert not needs_compaction(path)


def test_a_missing_or_foreign_file_needs_nothing(tmp_path: Path) -> None:
    assert not needs_compaction(tmp_path / "none.db")
    (tmp_path / "text.db").write_text("not a database")
    assert not needs_compaction(tmp_path / "text.db")


def test_an_interrupted_compaction_leaves_every_row_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chats.db"
    states = old_database(path, [(f"p{k} ", f"r{k} ") for k in range(20)])
    ChatStore(path).close()
    import termlm.conversation.compact as module

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first batch

    with pytest.raises(KeyboardInterrupt):
        compact(path, progress=stop)
    assert needs_compaction(path)  # not marked: the next open goes on
    report = compact(path)
    assert report.rows == 40 - module.BATCH // 2  # the first batch's prompts are already gone
    db = sqlite3.connect(path)
    blobs = [b for (b,) in db.execute("SELECT state FROM messages WHERE role = 'model'")]
    assert len(blobs) == 20
    for blob, state in zip(blobs, states[1::2], strict=True):
        again = state_from_blob(blob)
        assert again is not None and all(np.array_equal(again[k], state[k]) for k in state)
    db.close()


def test_replies_with_tokens_drop_older_states_and_replay_them_exactly(tmp_path: Path) -> None:
    """A database of a later version (token ids saved) with a state on every reply: the older
    replies' states go, and they are read again from their tokens bit for bit."""
    pytest.importorskip("onnx")
    from tiny_onnx import write_tiny_model

    from termlm.conversation.engine import OnnxEngine
    from termlm.conversation.store import state_to_blob
    from termlm.tokenizers import fit_tokenizer

    text = "the quick brown fox jumps over the lazy dog\n" * 3
    tokenizer = fit_tokenizer("char", text)
    model = write_tiny_model(
        tmp_path / "rnn.onnx", "rnn", vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json()
    )
    path = tmp_path / "chats.db"
    settings = Settings(seed=3, max_tokens=12, strategy="sample")

    def open_core() -> ChatCore:
        engine = OnnxEngine(entry_points=False, user_dir=False)
        core = ChatCore(engine, ChatStore(path), settings)
        core.model = engine.load(str(model))
        return core

    def reply(core: ChatCore, prompt: str) -> None:
        job = core.send(prompt, {})
        assert job.wait(30)
        _, result = job.take(job.drain())
        assert result is not None
        core.finish(job, result)

    core = open_core()
    for prompt in ("the ", "quick ", "brown "):
        reply(core, prompt)
    kept = {m.id: m.state for m in core.conversation.messages if m.role == "model"}
    brown = core.conversation.messages[-1].token_ids
    reply(core, "fox ")
    expected = core.conversation.messages[-1].token_ids
    core.drop_last_exchange()
    core.close()
    db = sqlite3.connect(path)  # as an older version left it: every reply's state, uncompressed
    with db:
        for message_id, state in kept.items():
            assert state is not None and state_to_blob(state)
            db.execute("UPDATE messages SET state = ? WHERE id = ?", (old_blob(state), message_id))
        db.execute("PRAGMA user_version = 0")
    db.close()

    assert needs_compaction(path)
    report = compact(path)
    assert report.dropped == 2 and report.state_after < report.state_before
    again = open_core()
    again.open_chat(again.store.list_chats()[0].id)
    assert again.conversation.messages[3].state is None  # dropped: read again from its tokens
    again.drop_last_exchange()
    reply(again, "brown ")
    assert again.conversation.messages[-1].token_ids == brown  # exactly as before
    reply(again, "fox ")
    assert again.conversation.messages[-1].token_ids == expected
    again.close()


@pytest.mark.anyio
async def test_the_chat_compacts_an_old_database_in_the_background(tmp_path: Path) -> None:
    from tui_helpers import make_app, wait_until

    path = tmp_path / "chats.db"
    old_database(path, [("hello ", "world "), ("again ", "and again ")])
    app = make_app(tmp_path)

    def said() -> list[str]:
        return [str(n.message) for n in app._notifications]

    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: any("compacted" in text for text in said()))
        assert any("older version" in text for text in said())
        assert not needs_compaction(path)
        app.chat.open_chat(1)  # the old chat opens as it was
        await wait_until(pilot, lambda: len(app.chat.views) == 4)
        assert [view.body for view in app.chat.views][-1] == "and again "
