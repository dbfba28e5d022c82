"""A reply whose state must be read back from its tokens is read in a worker: the UI stays live."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tui_helpers import make_app, wait_until

from termlm.conversation.demo import FakeEngine
from termlm.runtime.types import State
from termlm.tui.widgets import PromptInput, StatusLine

pytestmark = pytest.mark.anyio


class SlowReplay(FakeEngine):
    """Reading a reply back waits for ``replay_gate``; where it ran is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.replay_gate = threading.Event()
        self.replayed_on: list[str] = []

    def replay(
        self, prompt: str | Sequence[int], token_ids: Sequence[int], *, state: State | None = None
    ) -> State:
        self.replayed_on.append(threading.current_thread().name)
        assert self.replay_gate.wait(30)
        return super().replay(prompt, token_ids, state=state)


def status(chat: Any) -> str:
    return str(chat.query_one(StatusLine).render())


async def open_without_states(pilot: Any, app: Any, tmp_path: Path) -> Any:
    """A saved chat of two exchanges whose replies kept no state (an older reply, reopened)."""
    chat = app.chat
    await wait_until(pilot, lambda: chat.model is not None)
    for text in ("first", "second"):
        chat.query_one(PromptInput).load_text(text)
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: not chat.generating and chat.views and chat.reply_view is None
        )
    await wait_until(pilot, lambda: len(chat.conversation.messages) == 4)
    chat_id = chat.conversation.chat_id
    db = sqlite3.connect(tmp_path / "chats.db")
    with db:
        db.execute("UPDATE messages SET state = NULL")
    db.close()
    chat.new_chat()
    chat.open_chat(chat_id)
    await wait_until(pilot, lambda: len(chat.views) == 4)
    assert chat.core.unread_before(4) is chat.conversation.messages[3]
    return chat


async def test_sending_after_a_reply_without_state_reads_it_back_in_a_worker(
    tmp_path: Path,
) -> None:
    engine = SlowReplay()
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(100, 30)) as pilot:
        chat = await open_without_states(pilot, app, tmp_path)
        chat.query_one(PromptInput).load_text("third")
        await pilot.press("enter")
        await wait_until(pilot, lambda: engine.replayed_on != [])
        assert threading.main_thread().name not in engine.replayed_on
        await wait_until(pilot, lambda: "reading the last reply back" in status(chat))
        await pilot.press("end", "x")  # the UI answers while the model reads
        await wait_until(pilot, lambda: chat.query_one(PromptInput).text == "thirdx")
        assert len(chat.conversation.messages) == 4  # the prompt waits in its box
        engine.replay_gate.set()
        await wait_until(pilot, lambda: len(chat.conversation.messages) == 6)
        await wait_until(pilot, lambda: not chat.generating)
        assert chat.conversation.messages[4].text == "thirdx"
        fed = engine.calls[-1]["state"]
        assert fed is not None  # continued from the reply read back, not from scratch
        assert int(fed["seen"][0, 0]) > len("thirdx")


async def test_regenerate_reads_back_in_a_worker_too(tmp_path: Path) -> None:
    engine = SlowReplay()
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(100, 30)) as pilot:
        chat = await open_without_states(pilot, app, tmp_path)
        calls = len(engine.calls)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: engine.replayed_on != [])
        assert threading.main_thread().name not in engine.replayed_on
        assert len(engine.calls) == calls  # nothing generated before the state is back
        engine.replay_gate.set()
        await wait_until(pilot, lambda: len(engine.calls) == calls + 1)
        await wait_until(pilot, lambda: not chat.generating)
        assert chat.conversation.branch_label(3)  # the regenerated reply is a second branch
