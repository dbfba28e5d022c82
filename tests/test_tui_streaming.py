"""What the chat does, and does not do, while a reply streams: the UI's work is the model's loss
(the reply's thread and the UI share one interpreter lock)."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest
from tui_helpers import make_app, wait_until

from termlm.conversation.demo import FakeEngine
from termlm.conversation.settings import Settings
from termlm.tui.chat_screen import ChatScreen
from termlm.tui.widgets import PromptInput


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


async def ready(pilot: Any, app: Any) -> ChatScreen:
    chat: ChatScreen = app.chat
    await wait_until(pilot, lambda: chat.model is not None)
    return chat


async def start(pilot: Any, chat: ChatScreen, words: int) -> None:
    """Send a prompt and wait until the reply shows ``words`` words (the gate holds the rest)."""
    chat.query_one(PromptInput).load_text("go on")
    chat.query_one(PromptInput).focus()
    await pilot.press("enter")
    await wait_until(
        pilot, lambda: chat.reply_view is not None and len(chat.reply_view.body.split()) == words
    )


async def painted(pilot: Any, chat: ChatScreen) -> None:
    """Wait for the screen's next refresh and the one after it (a layout pass the first one asked
    for is done by then)."""
    done = threading.Event()
    chat.call_after_refresh(lambda: chat.call_after_refresh(done.set))
    await wait_until(pilot, done.is_set)


def at_end(chat: ChatScreen) -> bool:
    transcript = chat.transcript
    return transcript.max_scroll_y > 0 and transcript.scroll_y == transcript.max_scroll_y


async def test_a_growing_reply_is_laid_out_once_per_frame_and_followed(tmp_path: Path) -> None:
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(gate=gate, hold_after=2))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        await start(pilot, chat, 2)
        view = chat.reply_view
        assert view is not None
        chat.transcript.grow(" word" * 300)  # taller than the screen: a scrollbar (its own pass)
        await wait_until(pilot, lambda: at_end(chat))
        screen = chat
        passes: list[bool] = []
        layout = screen._refresh_layout

        def counted(*args: Any, **kwargs: Any) -> None:
            if screen._layout_widgets:  # a layout pass (a repaint of the status line is not one)
                passes.append(True)
            layout(*args, **kwargs)

        screen._refresh_layout = counted  # type: ignore[method-assign]
        chat.transcript.grow(" more" * 100)
        await painted(pilot, chat)
        assert len(passes) == 1  # Textual alone would lay the screen out twice
        assert at_end(chat)  # the same pass scrolled to the new end
        chat.transcript.grow(" last" * 100)  # the last frame, and the end in the same tick
        chat.transcript.let_go()
        await painted(pilot, chat)
        assert at_end(chat)  # the reply's end is in view
        gate.set()


async def test_a_reader_who_scrolls_up_is_left_there_until_back_at_the_end(
    tmp_path: Path,
) -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate, hold_after=400, reply_words=500)
    app = make_app(tmp_path, engine, settings=Settings(seed=7, max_tokens=1000))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        await start(pilot, chat, 400)
        await wait_until(pilot, lambda: at_end(chat))
        transcript = chat.transcript
        transcript.focus()
        await pilot.press("pageup")
        await wait_until(  # Page Up animates: wait for the scroll to arrive where it goes
            pilot,
            lambda: transcript.scroll_y == transcript.scroll_target_y < transcript.max_scroll_y,
        )
        kept = transcript.scroll_y
        gate.set()
        await wait_until(pilot, lambda: not chat.generating)
        await painted(pilot, chat)
        assert transcript.scroll_y == kept < transcript.max_scroll_y
        await pilot.press("end")  # back at the end: the next reply is followed again
        await wait_until(pilot, lambda: at_end(chat))
        count = len(chat.conversation.messages)
        chat.query_one(PromptInput).load_text("and again")
        chat.query_one(PromptInput).focus()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: not chat.generating and len(chat.conversation.messages) == count + 2
        )
        await painted(pilot, chat)
        assert at_end(chat)


@pytest.mark.parametrize("end", ["done", "escape", "delete", "quit"])
async def test_what_streaming_holds_back_comes_back_however_the_reply_ends(
    tmp_path: Path, end: str
) -> None:
    """While a reply streams the cursor does not blink and the collector leaves the objects
    that existed before it alone; both come back at the end, whatever ends it."""
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(gate=gate, hold_after=2))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        prompt = chat.query_one(PromptInput)
        assert prompt.cursor_blink
        await start(pilot, chat, 2)
        assert not prompt.cursor_blink and gc.get_freeze_count() > 0
        if end == "done":
            gate.set()
        elif end == "escape":
            await pilot.press("escape")
        elif end == "delete":
            [saved] = app.store.list_chats()
            chat.delete_chat(saved.id)
        else:
            await pilot.press("ctrl+q")
        if end != "quit":
            await wait_until(pilot, lambda: not chat.generating)
            assert prompt.cursor_blink
    assert gc.get_freeze_count() == 0


async def test_a_long_model_name_is_shortened_and_the_status_line_kept(tmp_path: Path) -> None:
    name = "shakespeare-char-finetuned-on-the-complete-sonnets-with-a-very-long-name"
    app = make_app(tmp_path, FakeEngine(model_names=(name,)))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        status = chat.query_one("#status")

        def line() -> str:
            return str(status.render()).strip()

        await wait_until(pilot, lambda: line().startswith("shakespeare-"))
        assert "…" in line() and line().endswith("tok/s")
        assert len(line()) <= 80
        await pilot.resize_terminal(160, 24)  # room enough: the whole name
        await wait_until(pilot, lambda: name in line())
