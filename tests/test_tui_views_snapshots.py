"""Snapshots of the views inside the model (SVG), on the scripted fake engine.

The fake's made-up probabilities, attention and hidden units are steady, and its time is fixed,
so every figure on screen is the same on every run. Regenerate with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

from tui_helpers import make_app, wait_until

from termlm.conversation.demo import FakeEngine
from termlm.conversation.settings import Settings
from termlm.tui.widgets import PromptInput

SIZE = (110, 36)


def app_for(tmp_path: Path, **settings: Any) -> Any:
    engine = FakeEngine(reply_words=9, seconds_per_token=0.01)
    return make_app(tmp_path, engine, settings=Settings(seed=7, max_tokens=200, **settings))


async def one_reply(pilot: Any, prompt: str = "Once upon a time") -> Any:
    chat = pilot.app.chat
    await wait_until(pilot, lambda: chat.model is not None)
    chat.query_one(PromptInput).cursor_blink = False
    chat.query_one(PromptInput).load_text(prompt)
    await pilot.press("enter")
    await wait_until(pilot, lambda: not chat.generating)
    chat.last_rate = 3.0  # the status line's rate is wall-clock: fixed for the picture
    chat.refresh_status()
    await pilot.pause()
    return chat


def test_confidence_colours(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await one_reply(pilot)
        await pilot.press("f4")
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_inspector(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await one_reply(pilot)
        await pilot.press("f3")
        screen = pilot.app.screen
        await wait_until(pilot, lambda: screen.trace is not None)
        await pilot.press("left", "left", "down")
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=(110, 44), run_before=run_before)


def test_beams_n_best(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Any) -> None:
        await pilot.press("f9")
        await one_reply(pilot, "Tell me")
        pilot.app.clear_notifications()  # "beams show here…", said when F9 came before a search
        await pilot.pause()

    app = app_for(tmp_path, strategy="beam")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_score(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Any) -> None:
        chat = pilot.app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        await pilot.press("f5")
        screen = pilot.app.screen
        area = screen.query_one("#score-input")
        area.cursor_blink = False
        area.load_text("the quick brown fox jumps over a lazy dog")
        await pilot.press("f5")
        await wait_until(pilot, lambda: screen.trace is not None)
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_arena(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Any) -> None:
        chat = pilot.app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        await pilot.press("f6")
        screen = pilot.app.screen
        screen.query_one("#arena-prompt").value = "old roads"
        area = screen.query_one("#arena-contestants")
        area.cursor_blink = False
        area.load_text("greedy\nsample temperature=0.7\nbeam beams=2")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.entries and not screen.running)
        screen.query("ArenaColumn").first().focus()
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=(130, 36), run_before=run_before)


def test_prompt_vocabulary(snap_compare: Any, tmp_path: Path) -> None:
    async def run_before(pilot: Any) -> None:
        chat = pilot.app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        prompt = chat.query_one(PromptInput)
        prompt.cursor_blink = False
        await pilot.press("f7")
        prompt.load_text("the quick zebra jumps over a lazy dog")
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=SIZE, run_before=run_before)
