"""The chat app driven by the pilot, against the scripted fake engine."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("textual")

from textual.widgets import Input, Select, Switch
from tui_helpers import make_app, wait_until

from termlm.conversation.demo import FAKE_WORDS, FakeEngine
from termlm.conversation.settings import Settings
from termlm.tui.chat_screen import ChatScreen
from termlm.tui.panel import OptionField
from termlm.tui.widgets import MessageView, PromptInput

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def ready(pilot, app) -> ChatScreen:  # type: ignore[no-untyped-def]
    chat = app.chat
    await wait_until(pilot, lambda: chat.model is not None)
    return chat


async def send(pilot, chat: ChatScreen, text: str) -> None:  # type: ignore[no-untyped-def]
    chat.query_one(PromptInput).load_text(text)
    chat.query_one(PromptInput).focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: not chat.generating)


def bodies(chat: ChatScreen) -> list[str]:
    return [view.body for view in chat.query(MessageView)]


class HeldEngine(FakeEngine):
    """The fake, holding its reply after the third token until ``go`` is set."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.go = threading.Event()

    def generate(self, prompt: Any, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        events = super().generate(prompt, **kwargs)

        def held() -> Iterator[Any]:
            for index, event in enumerate(events):
                if index == 3:
                    self.go.wait(60)
                yield event

        return held()


async def test_prompt_streams_a_reply(tmp_path: Path) -> None:
    engine = HeldEngine(reply_words=12)
    app = make_app(tmp_path, engine)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await pilot.click(PromptInput)
        await pilot.press(*"hi there")
        await pilot.press("enter")
        assert chat.query_one(PromptInput).text == ""
        # part of the reply is on screen while the model is still running
        await wait_until(pilot, lambda: chat.reply_view is not None and chat.reply_view.body != "")
        assert chat.generating
        engine.go.set()
        await wait_until(pilot, lambda: not chat.generating)
        assert [m.role for m in chat.conversation.messages] == ["user", "model"]
        reply = chat.conversation.messages[1]
        assert reply.text.split() == [FAKE_WORDS[(8 + 7 + i) % len(FAKE_WORDS)] for i in range(12)]
        assert bodies(chat) == ["hi there", reply.text]
        assert reply.state is not None and int(reply.state["seen"][0, 0]) == 8 + len(reply.fed)
        assert engine.calls[0]["prompt"] == "hi there" and engine.calls[0]["seed"] == 7
        assert "12 tokens" in str(chat.query_one("#status").render())


async def test_escape_stops_at_once(tmp_path: Path) -> None:
    gate = threading.Event()  # never opened: the fake model waits until cancelled
    app = make_app(tmp_path, FakeEngine(gate=gate))
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send_without_waiting(pilot, chat, "wait for it")
        assert chat.generating
        await pilot.press("escape")
        await wait_until(pilot, lambda: not chat.generating, timeout=2.0)
        reply = chat.conversation.messages[-1]
        assert reply.role == "model" and reply.stop_reason == "cancelled"
        assert "stopped" in str(chat.views[-1].border_subtitle)
        await pilot.press(*"still alive")
        assert chat.query_one(PromptInput).text == "still alive"


async def send_without_waiting(pilot, chat: ChatScreen, text: str) -> None:  # type: ignore[no-untyped-def]
    chat.query_one(PromptInput).load_text(text)
    chat.query_one(PromptInput).focus()
    await pilot.press("enter")
    await pilot.pause()


async def test_undo_and_regenerate_reuse_stored_state(tmp_path: Path) -> None:
    engine = FakeEngine()
    app = make_app(tmp_path, engine, settings=Settings(seed=None))
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "one")
        await send(pilot, chat, "two")
        first_state = chat.conversation.messages[1].state
        assert engine.calls[1]["state"] is first_state  # continued, not re-read
        assert engine.calls[1]["prompt"] == "two"

        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not chat.generating)
        assert len(engine.calls) == 3
        assert engine.calls[2]["prompt"] == "two" and engine.calls[2]["state"] is first_state
        assert [m.role for m in chat.conversation.messages] == ["user", "model"] * 2
        assert len(chat.query(MessageView)) == 4

        await pilot.press("ctrl+z")
        await wait_until(pilot, lambda: len(chat.query(MessageView)) == 2)
        assert [m.text for m in chat.conversation.messages][:1] == ["one"]
        assert len(chat.conversation.messages) == 2
        assert len(chat.query(MessageView)) == 2
        assert chat.query_one(PromptInput).text == "two"  # the prompt comes back to be edited
        assert chat.conversation.last_state() is first_state
        assert len(engine.calls) == 3  # undo ran nothing
        saved, *_ = app.store.load_chat(chat.conversation.chat_id or 0)
        assert [m.text for m in saved.messages] == [m.text for m in chat.conversation.messages]


async def test_switching_strategy_changes_the_fields(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 50)) as pilot:
        chat = await ready(pilot, app)
        await pilot.press("f2")
        await wait_until(pilot, lambda: len(chat.query(OptionField)) > 0)
        names = [field.spec.name for field in chat.query(OptionField)]
        # the demo's fields are the real plugins' (one option model: it cannot drift)
        real = [spec.name for spec in app.engine.options_for("sample")]
        assert names == real and names[:2] == ["temperature", "top_k"]

        chat.query_one("#strategy-select", Select).value = "beam"
        beam = [spec.name for spec in app.engine.options_for("beam")]
        switches = [spec for spec in app.engine.options_for("beam") if spec.type is bool]
        await wait_until(  # the fields are mounted, their inputs and switches inside them too
            pilot,
            lambda: (
                [f.spec.name for f in chat.query(OptionField)] == beam
                and len(chat.query("#option-fields Switch")) == len(switches)
            ),
        )
        assert len(switches) >= 1  # one switch per flag
        assert app.settings.strategy == "beam"
        assert json.loads((tmp_path / "chat.json").read_text())["strategy"] == "beam"

        switch = chat.query_one("#option-fields Switch", Switch)
        switch.value = True
        await wait_until(pilot, lambda: "early_stopping" in app.settings.options.get("beam", {}))
        assert app.settings.options["beam"]["early_stopping"] is True


async def test_a_bad_option_is_refused_with_its_range(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 50)) as pilot:
        chat = await ready(pilot, app)
        await pilot.press("f2")
        await wait_until(pilot, lambda: len(chat.query(OptionField)) > 0)
        field = next(f for f in chat.query(OptionField) if f.spec.name == "temperature")
        assert "(0, 10]" in str(field.query_one(".field-label").render())  # 0 is outside
        box = field.query_one(Input)
        box.focus()
        box.value = ""
        await pilot.press(*"50")
        await wait_until(pilot, lambda: box.has_class("-invalid"))
        error = str(field.query_one(".field-error").render())
        assert "temperature must be in (0, 10]" in error
        # the field shows an error: the option is what it was before the edit, never "5"
        assert app.settings.options_for("sample").get("temperature", 0.8) == 0.8

        await pilot.press("backspace", "backspace", "0")
        await wait_until(pilot, lambda: "(0, 10]" in str(field.query_one(".field-error").render()))

        await pilot.press("backspace", *"0.5")
        await wait_until(pilot, lambda: str(field.query_one(".field-error").render()) == "")
        assert app.settings.options_for("sample")["temperature"] == 0.5
        saved = json.loads((tmp_path / "chat.json").read_text())
        assert saved["options"]["sample"]["temperature"] == 0.5

        await send(pilot, chat, "go")
        assert chat.conversation.messages[-1].options["temperature"] == 0.5


EXPLODE = """
from termlm.decoding import hookimpl


class Explode:
    name = "explode"
    description = "Fails at its third token (the demo engine scripts the failure)."
    options = ()

    def run(self, ctx):
        yield from ()


@hookimpl
def register_plugins(register):
    register(Explode)
"""


async def test_plugin_error_becomes_a_notification(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "explode.py").write_text(EXPLODE)
    engine = FakeEngine(plugins_dirs=(folder,))
    app = make_app(tmp_path, engine, settings=Settings(strategy="explode", seed=1))
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "boom please")
        assert any(
            "plugin 'explode' failed" in str(n.message) and n.severity == "error"
            for n in app._notifications
        )
        reply = chat.conversation.messages[-1]
        assert reply.stop_reason == "error" and reply.text.split() == reply.text.split()[:2]
        await pilot.press(*"more")
        assert chat.query_one(PromptInput).text == "more"


async def test_a_refused_generation_keeps_what_was_typed(tmp_path: Path) -> None:
    # a remembered option the strategy refuses (out of range): nothing runs, the text stays
    settings = Settings(seed=1, options={"sample": {"temperature": 99.0}})
    engine = FakeEngine()
    app = make_app(tmp_path, engine, settings=settings)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        chat.query_one(PromptInput).load_text("keep me")
        chat.query_one(PromptInput).focus()
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: any("temperature must be in" in str(n.message) for n in app._notifications),
        )
        assert not engine.calls and not chat.conversation.messages
        assert chat.query_one(PromptInput).text == "keep me"


async def test_a_model_that_fails_to_load_is_a_notification(tmp_path: Path) -> None:
    engine = FakeEngine(fail_load=frozenset({"tiny-word"}))
    app = make_app(tmp_path, engine, model="tiny-word")
    async with app.run_test() as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: not chat.model_loading)
        assert chat.model is None
        assert any("cannot load" in str(n.title) for n in app._notifications)
        await send_without_waiting(pilot, chat, "hello")
        assert chat.query_one(PromptInput).text == "hello"  # nothing typed is lost
        assert not chat.conversation.messages


async def test_a_prompt_sent_while_loading_goes_when_ready(tmp_path: Path) -> None:
    gate = threading.Event()
    engine = FakeEngine(load_gate=gate)
    app = make_app(tmp_path, engine)
    async with app.run_test() as pilot:
        chat = app.chat
        await pilot.press(*"early bird", "enter")
        await wait_until(pilot, lambda: chat.send_when_ready)
        assert chat.model is None and not engine.calls
        assert chat.query_one(PromptInput).text == "early bird"
        gate.set()
        await wait_until(pilot, lambda: len(chat.conversation.messages) == 2)
        await wait_until(pilot, lambda: not chat.generating)
        assert engine.calls[0]["prompt"] == "early bird"
        assert chat.query_one(PromptInput).text == ""


async def test_a_saved_chat_reopens_and_continues_from_its_state(tmp_path: Path) -> None:
    first = FakeEngine()
    app = make_app(tmp_path, first)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "alpha")
        await send(pilot, chat, "beta")
        stored_state = chat.conversation.messages[-1].state
        texts = bodies(chat)
    assert stored_state is not None

    second = FakeEngine()
    app = make_app(tmp_path, second)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        assert chat.conversation.messages == []
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(chat.conversation.messages) == 4)
        assert bodies(chat) == texts
        await send(pilot, chat, "gamma")
        call = second.calls[0]
        assert call["prompt"] == "gamma"  # only the new prompt is fed
        np.testing.assert_array_equal(call["state"]["seen"], stored_state["seen"])
        # the up key recalls prompts of the reopened chat
        await pilot.press("up")
        assert chat.query_one(PromptInput).text == "gamma"
        await pilot.press("up")
        assert chat.query_one(PromptInput).text == "beta"
        await pilot.press("down", "down")
        assert chat.query_one(PromptInput).text == ""


async def test_chats_can_be_renamed_and_deleted(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "first chat")
        await pilot.press("ctrl+n")
        await send(pilot, chat, "second chat")
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        rename = app.screen.query_one("#rename-input", Input)
        rename.value = "renamed"
        await pilot.press("enter")
        await pilot.pause()
        assert [c.title for c in app.store.list_chats()] == ["renamed", "first chat"]
        await pilot.press("down", "d")
        confirm = app.screen.query_one("#chats-confirm")
        await wait_until(pilot, lambda: "for good" in str(confirm.render()))
        assert len(app.store.list_chats()) == 2  # asked first, nothing deleted yet
        await pilot.press("y")
        await wait_until(pilot, lambda: len(app.store.list_chats()) == 1)
        assert [c.title for c in app.store.list_chats()] == ["renamed"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen)


async def test_dialogue_mode_speaks_as_a_character(tmp_path: Path) -> None:
    engine = FakeEngine()
    settings = Settings(seed=3, mode="dialogue", user_name="ROMEO", bot_name="JULIET")
    app = make_app(tmp_path, engine, settings=settings)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "Good morrow")
        assert engine.calls[0]["prompt"] == "ROMEO:\nGood morrow\n\nJULIET:\n"
        reply = chat.conversation.messages[-1]
        assert reply.speaker == "JULIET" and reply.stop_reason == "stop"
        assert not reply.text.endswith("\n")
        await send(pilot, chat, "Again")
        assert engine.calls[1]["prompt"] == "ROMEO:\nAgain\n\nJULIET:\n"
        await pilot.press("ctrl+t")
        assert app.settings.mode == "continue"


async def test_export_copy_help_and_palette(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "to be exported")
        await pilot.press("ctrl+s")
        files = list(tmp_path.glob("termlm-*.md"))
        assert len(files) == 1
        markdown = files[0].read_text()
        assert (
            "> to be exported" in markdown
            and chat.conversation.messages[1].text.split()[0] in markdown
        )
        copied: list[str] = []
        monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
        await pilot.press("ctrl+y")
        assert copied == [chat.conversation.messages[1].text]
        await pilot.press("f1")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is chat)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in ("Stop", "Regenerate", "Undo", "Panel", "Chats", "Export", "Help"):
            assert title in titles
        assert "Theme" in " ".join(titles)


async def test_switching_model_starts_a_new_chat_and_is_remembered(tmp_path: Path) -> None:
    app = make_app(tmp_path, settings=Settings(seed=1, panel=True))
    async with app.run_test(size=(120, 50)) as pilot:
        chat = await ready(pilot, app)
        assert chat.model is not None and chat.model.name == "tiny-char"
        await send(pilot, chat, "with the first model")
        chat.query_one("#model-select", Select).value = "tiny-word"
        await wait_until(pilot, lambda: chat.model is not None and chat.model.name == "tiny-word")
        await wait_until(pilot, lambda: not chat.query(MessageView))
        assert chat.conversation.messages == []
        assert json.loads((tmp_path / "chat.json").read_text())["model"] == "tiny-word"
        assert any("new chat" in str(n.message) for n in app._notifications)


async def test_the_theme_is_remembered(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test() as pilot:
        await ready(pilot, app)
        app.theme = "nord"
        await wait_until(pilot, lambda: app.settings.theme == "nord")
    assert json.loads((tmp_path / "chat.json").read_text())["theme"] == "nord"
    app = make_app(tmp_path, settings=Settings(theme="nord"))
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: app.theme == "nord")


async def test_a_result_still_being_shown_when_the_app_closes_is_dropped() -> None:
    """A worker's async callback (a loaded model's option fields being mounted) that is still
    waiting when the app closes looks for widgets that are gone: the worker must not fail."""
    import asyncio

    from textual.app import App, ComposeResult
    from textual.widgets import Static

    from termlm.tui.threads import hand_to_ui

    class Probe(App[None]):
        def compose(self) -> ComposeResult:
            yield Static(id="status")

    app = Probe()
    started = threading.Event()
    failures: list[BaseException] = []

    async def show() -> None:
        started.set()
        await asyncio.sleep(0.3)  # the app closes meanwhile
        app.query_one("#status", Static).update("loaded")

    def worker() -> None:
        try:
            hand_to_ui(app, show)
        except BaseException as exc:  # what the worker would fail with
            failures.append(exc)

    thread = threading.Thread(target=worker)
    async with app.run_test():
        thread.start()
        await asyncio.to_thread(started.wait, 5)
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
    assert failures == []


@pytest.mark.parametrize("when", ["while the screen closes", "after the app has ended"])
async def test_quitting_while_the_model_loads_ends_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The load finishes while the app quits: its result has no screen to go to, and the quit
    must not end with the loader's error (run_test raises WorkerFailed if it does)."""
    import time

    gate = threading.Event()
    engine = FakeEngine(load_gate=gate)
    if when == "while the screen closes":
        unmount = ChatScreen.on_unmount

        def late(screen: ChatScreen) -> None:
            gate.set()  # the loader hands its result over now, as the screen is taken down
            time.sleep(0.2)
            unmount(screen)

        monkeypatch.setattr(ChatScreen, "on_unmount", late)
    app = make_app(tmp_path, engine)
    async with app.run_test() as pilot:
        await pilot.pause(0.1)
        assert app.chat.model is None  # still loading
    gate.set()  # (after the app has ended: the load ends now)
    assert engine.load_gate is gate


async def test_a_new_chat_drops_the_reply_in_flight(tmp_path: Path) -> None:
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(gate=gate))
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send_without_waiting(pilot, chat, "never mind")
        assert chat.generating
        await pilot.press("ctrl+n")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: not chat.generating)
        assert chat.conversation.messages == []
        assert not chat.query(MessageView)
