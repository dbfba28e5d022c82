"""Saved chats keep every branch: the messages form a tree in the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("textual")

from tui_helpers import make_app, wait_until

from termlm.conversation.demo import FakeEngine
from termlm.conversation.store import ChatStore
from termlm.conversation.tree import Message
from termlm.tui.chat_screen import ChatScreen
from termlm.tui.widgets import MessageView, PromptInput


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _reply(text: str, seen: int) -> Message:
    return Message(role="model", text=text, fed=text, state={"seen": np.array([[seen]])})


def test_a_branch_and_its_sibling_are_both_saved(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats.db")
    chat = store.create_chat("t", "continue", "m", "sha")
    user = Message(role="user", text="hi", fed="hi")
    store.add_message(chat, 0, user)
    first = _reply("one", 5)
    store.add_message(chat, 1, first, parent_id=user.id)
    store.add_message(chat, 2, Message(role="user", text="more", fed="more"), parent_id=first.id)
    second = _reply("two", 6)
    store.add_message(chat, 1, second, parent_id=user.id)  # regenerated: a sibling of "one"

    conversation, *_ = store.load_chat(chat)
    assert [m.text for m in conversation.messages] == ["hi", "two"]
    fork = conversation.forks[1]
    assert fork.current == 1 and len(fork.branches) == 2
    assert [m.text for m in fork.branches[0].messages] == ["one", "more"]
    conversation.switch_branch(1, 0)
    assert [m.text for m in conversation.messages] == ["hi", "one", "more"]
    assert conversation.messages[1].state is not None
    assert int(conversation.messages[1].state["seen"][0, 0]) == 5

    assert first.id is not None
    store.show_branch(first.id)
    assert [m.text for m in store.load_chat(chat)[0].messages] == ["hi", "one", "more"]
    store.delete_after(chat, user.id, 1)  # undo from the reply: every branch there goes
    reopened, *_ = store.load_chat(chat)
    assert [m.text for m in reopened.messages] == ["hi"] and not reopened.forks
    store.close()


def test_an_old_database_becomes_a_straight_line(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE chats (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
            mode TEXT NOT NULL DEFAULT 'continue', model_name TEXT, model_sha256 TEXT,
            created REAL NOT NULL, updated REAL NOT NULL);
        CREATE TABLE messages (id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, position INTEGER
            NOT NULL, role TEXT NOT NULL, speaker TEXT, text TEXT NOT NULL, fed TEXT NOT NULL,
            model_name TEXT, model_sha256 TEXT, strategy TEXT, options TEXT, seed INTEGER,
            max_tokens INTEGER, stop_reason TEXT, tokens INTEGER NOT NULL DEFAULT 0,
            seconds REAL NOT NULL DEFAULT 0, state BLOB, created REAL NOT NULL);
        INSERT INTO chats VALUES (1, 'old', 'continue', 'm', 'sha', 0, 0);
        INSERT INTO messages (chat_id, position, role, text, fed, options, created)
            VALUES (1, 0, 'user', 'a', 'a', '{}', 0), (1, 1, 'model', 'b', 'b', '{}', 0),
                   (1, 2, 'user', 'c', 'c', '{}', 0), (1, 3, 'model', 'd', 'd', '{}', 0);
        """
    )
    db.commit()
    db.close()

    store = ChatStore(path)
    conversation, *_ = store.load_chat(1)
    assert [m.text for m in conversation.messages] == ["a", "b", "c", "d"]
    assert not conversation.forks
    # the migrated chat branches like a new one
    reply = Message(role="model", text="b2", fed="b2")
    store.add_message(1, 1, reply, parent_id=conversation.messages[0].id)
    again, *_ = store.load_chat(1)
    assert [m.text for m in again.messages] == ["a", "b2"]
    assert [m.text for m in again.forks[1].branches[0].messages] == ["b", "c", "d"]
    store.close()
    ChatStore(path).close()  # opening a migrated database again changes nothing


async def _send(pilot, chat: ChatScreen, text: str) -> None:  # type: ignore[no-untyped-def]
    chat.query_one(PromptInput).load_text(text)
    chat.query_one(PromptInput).focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: not chat.generating and chat.job is None)


@pytest.mark.anyio
async def test_branches_survive_reopening_the_chat(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine())
    async with app.run_test() as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        await _send(pilot, chat, "one")
        old = chat.conversation.messages[1]
        app.settings.seed = 11  # another seed: another reply
        await pilot.press("ctrl+r")
        await wait_until(
            pilot, lambda: len(chat.conversation.messages) == 2 and not chat.generating
        )
        await wait_until(pilot, lambda: chat.job is None)
        new = chat.conversation.messages[1]
        assert new is not old and new.text != old.text
        assert old.state is not None and new.state is not None
        chat_id = chat.conversation.chat_id

    engine = FakeEngine()
    app = make_app(tmp_path, engine)
    async with app.run_test() as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        chat.open_chat(chat_id)
        await wait_until(pilot, lambda: len(chat.conversation.messages) == 2)
        assert chat.conversation.messages[1].text == new.text  # the branch shown when it closed
        assert "branch 2/2" in (chat.views[1].border_subtitle or "")

        await pilot.press("f8")
        await wait_until(pilot, lambda: chat.conversation.messages[1].text == old.text)
        assert chat.conversation.branch_label(1) == "branch 1/2"
        assert [v.body for v in chat.query(MessageView)][-1] == old.text
        await _send(pilot, chat, "after old")
        np.testing.assert_array_equal(engine.calls[-1]["state"]["seen"], old.state["seen"])
        assert engine.calls[-1]["prompt"] == "after old"

        await pilot.press("f8")  # the fork is still the latest: back to the new reply
        await wait_until(pilot, lambda: chat.conversation.messages[1].text == new.text)
        assert len(chat.conversation.messages) == 2
        await _send(pilot, chat, "after new")
        np.testing.assert_array_equal(engine.calls[-1]["state"]["seen"], new.state["seen"])

    app = make_app(tmp_path, FakeEngine())
    async with app.run_test() as pilot:  # both continuations are saved, each in its branch
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        chat.open_chat(chat_id)
        await wait_until(pilot, lambda: len(chat.conversation.messages) == 4)
        assert chat.conversation.messages[2].text == "after new"
        fork = chat.conversation.forks[1]
        assert [m.text for m in fork.branches[0].messages][1] == "after old"
