"""Snapshots of the chat (SVG, pytest-textual-snapshot) on the scripted fake engine.

Deterministic: fixed seed, the fake's fixed words, and a clock the test moves by hand so the
tokens-per-second figure is always the same. Regenerate with ``pytest --snapshot-update``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

from tui_helpers import make_app, wait_until

from termlm.conversation.demo import FakeEngine
from termlm.conversation.settings import Settings
from termlm.tui.panel import OptionField
from termlm.tui.widgets import PromptInput


class HandClock:
    """A clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def chat_app(tmp_path: Path, *, panel: bool = False) -> tuple[Any, HandClock, threading.Event]:
    clock, gate = HandClock(), threading.Event()
    settings = Settings(seed=7, panel=panel, max_tokens=200)
    app = make_app(tmp_path, FakeEngine(gate=gate, reply_words=9), settings=settings, clock=clock)
    return app, clock, gate


def after_one_reply(clock: HandClock, gate: threading.Event, prompt: str) -> Any:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        chat.query_one(PromptInput).cursor_blink = False  # a blinking cursor is a race
        await wait_until(pilot, lambda: not chat.query_one("#strategy-select").is_blank())
        chat.query_one(PromptInput).load_text(prompt)
        await pilot.press("enter")
        clock.now += 3.0  # 9 tokens in 3 s: 3.0 tok/s
        gate.set()
        await wait_until(pilot, lambda: not chat.generating)
        chat.query_one(PromptInput).load_text("and then")
        await pilot.pause()

    return run_before


def test_main_screen(snap_compare: Any, tmp_path: Path) -> None:
    app, clock, gate = chat_app(tmp_path)
    assert snap_compare(
        app,
        terminal_size=(100, 30),
        run_before=after_one_reply(clock, gate, "Once upon a time"),
    )


def test_side_panel(snap_compare: Any, tmp_path: Path) -> None:
    app, clock, gate = chat_app(tmp_path, panel=True)

    async def run_before(pilot: Any) -> None:
        await after_one_reply(clock, gate, "Tell me")(pilot)
        count = len(pilot.app.engine.options_for("sample"))
        await wait_until(pilot, lambda: len(pilot.app.chat.query(OptionField)) == count)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 44), run_before=run_before)


def test_side_panel_at_80_by_24(snap_compare: Any, tmp_path: Path) -> None:
    """The panel narrows; the footer keeps the keys that matter."""
    app, clock, gate = chat_app(tmp_path, panel=True)

    async def run_before(pilot: Any) -> None:
        await after_one_reply(clock, gate, "Tell me")(pilot)
        count = len(pilot.app.engine.options_for("sample"))
        await wait_until(pilot, lambda: len(pilot.app.chat.query(OptionField)) == count)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_first_screen_at_80_by_24(snap_compare: Any, tmp_path: Path) -> None:
    """What a new user sees first: the model, how to send, where the keys are."""
    app, _clock, _gate = chat_app(tmp_path)

    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.chat.model is not None)
        pilot.app.chat.query_one(PromptInput).cursor_blink = False
        await wait_until(
            pilot, lambda: "tiny-char" in str(pilot.app.chat.query_one("#welcome").render())
        )

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_help_screen(snap_compare: Any, tmp_path: Path) -> None:
    app, _clock, _gate = chat_app(tmp_path)

    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: pilot.app.chat.model is not None)
        pilot.app.chat.query_one(PromptInput).cursor_blink = False
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 46), run_before=run_before)
