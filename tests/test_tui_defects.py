"""Every defect a new user met in the chat, each driven with the pilot as a person would."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input
from tui_helpers import make_app, wait_until

from termlm.conversation.demo import FakeEngine
from termlm.conversation.settings import Settings
from termlm.conversation.store import MEMORY, ChatStore
from termlm.tui.beams import BeamPanel, beams_word, score_gap
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


async def type_and_send(pilot: Any, chat: ChatScreen, text: str) -> None:
    chat.query_one(PromptInput).load_text(text)
    chat.query_one(PromptInput).focus()
    await pilot.press("enter")


async def send(pilot: Any, chat: ChatScreen, text: str) -> None:
    count = len(chat.conversation.messages)
    await type_and_send(pilot, chat, text)
    await wait_until(
        pilot, lambda: not chat.generating and len(chat.conversation.messages) >= count + 2
    )


def notes(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_delete_the_open_chat_then_send(tmp_path: Path) -> None:
    """Was: FOREIGN KEY constraint failed, a traceback full of arrays, and exit code 0."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "the first chat")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ChatsScreen")
        await pilot.press("d")
        await pilot.press("y")
        await wait_until(pilot, lambda: app.store.list_chats() == [])
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is chat)
        assert chat.conversation.messages == [] and chat.views == []
        await send(pilot, chat, "after the delete")
        [saved] = app.store.list_chats()
        assert saved.title == "after the delete" and saved.messages == 2


async def test_quit_while_a_reply_streams_keeps_it(tmp_path: Path) -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate, hold_after=2)
    app = make_app(tmp_path, engine)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await type_and_send(pilot, chat, "keep this")
        await wait_until(
            pilot, lambda: chat.reply_view is not None and len(chat.reply_view.body.split()) == 2
        )
        shown = chat.reply_view.body if chat.reply_view else ""
        await pilot.press("ctrl+q")
    store = ChatStore(tmp_path / "chats.db")
    conversation, *_ = store.load_chat(store.list_chats()[0].id)
    assert [m.role for m in conversation.messages] == ["user", "model"]
    reply = conversation.messages[-1]
    assert reply.text == shown and reply.stop_reason == "cancelled" and len(reply.token_ids) == 2


async def test_a_field_in_error_never_applies_a_partial_value(tmp_path: Path) -> None:
    app = make_app(tmp_path, settings=Settings(seed=7, max_tokens=200, panel=True))
    async with app.run_test(size=(120, 40)) as pilot:
        chat = await ready(pilot, app)
        box = chat.query_one("#max-tokens", Input)
        box.focus()
        await pilot.press("ctrl+a", "backspace", "5", "x")  # "5" on the way to "5x"
        error = chat.query_one("#max-tokens-error")
        await wait_until(pilot, lambda: "whole number" in str(error.render()))
        assert app.settings.max_tokens == 200  # not 5
        await send(pilot, chat, "go")
        assert chat.conversation.messages[-1].max_tokens == 200


async def test_field_errors_wrap_instead_of_being_cut(tmp_path: Path) -> None:
    app = make_app(tmp_path, settings=Settings(seed=7, panel=True))
    async with app.run_test(size=(80, 40)) as pilot:
        chat = await ready(pilot, app)
        field = next(f for f in chat.query("OptionField") if f.spec.name == "temperature")  # type: ignore[attr-defined]
        await wait_until(pilot, lambda: len(field.query(Input)) == 1)
        box = field.query_one(Input)
        box.value = "not a number at all"
        error = field.query_one(".field-error")
        await wait_until(pilot, lambda: "temperature" in str(error.render()))
        await wait_until(pilot, lambda: error.size.height >= 2)  # the whole message, wrapped


async def test_inspector_arrows_pick_candidates_in_a_small_terminal(tmp_path: Path) -> None:
    engine = FakeEngine(reply_words=40)
    app = make_app(tmp_path, engine, settings=Settings(seed=7, max_tokens=40))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "a long one")
        await pilot.press("f3")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "InspectScreen")
        inspector: Any = app.screen
        box = inspector.query_one("#inspect-box")
        await wait_until(pilot, lambda: box.max_scroll_y > 0)  # taller than its box
        await pilot.press("down")
        await wait_until(pilot, lambda: inspector.choice == 1)
        await pilot.press("down")
        await wait_until(pilot, lambda: inspector.choice == 2)
        await pilot.press("up")
        await wait_until(pilot, lambda: inspector.choice == 1)


async def test_a_prompt_longer_than_the_context_is_said(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, " ".join(["fox"] * 100))
        assert any("100 tokens" in n and "keeps the last 64" in n for n in notes(app))


async def test_dialogue_with_a_model_that_cannot_end_a_speech_is_said(tmp_path: Path) -> None:
    engine = FakeEngine(line_breaks=False)
    app = make_app(tmp_path, engine)
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        assert not any("blank line" in n for n in notes(app))
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: any("cannot write the blank line" in n for n in notes(app)))
        count = len(notes(app))
        await send(pilot, chat, "hello")
        assert len([n for n in notes(app)[count:] if "blank line" in n]) == 0  # said once


async def test_a_model_that_can_end_a_speech_gets_no_warning(tmp_path: Path) -> None:
    app = make_app(tmp_path, settings=Settings(seed=1, mode="dialogue"))
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "hello")
        assert not any("blank line" in n for n in notes(app))


async def test_no_model_is_not_a_choice(tmp_path: Path) -> None:
    app = make_app(tmp_path, settings=Settings(seed=1, panel=True))
    async with app.run_test(size=(120, 40)) as pilot:
        chat = await ready(pilot, app)
        select: Any = chat.query_one("#model-select")
        await wait_until(pilot, lambda: len(select._options) == 2)
        assert [value for _, value in select._options] == ["tiny-char", "tiny-word"]


def test_the_demo_touches_neither_the_real_chats_nor_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import termlm.cli.chat as chat_command
    from termlm.cli.chat import chat
    from termlm.tui.app import ChatApp

    monkeypatch.setattr(chat_command, "_at_a_terminal", lambda: True)  # as from a terminal
    monkeypatch.setenv("TERMLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TERMLM_CONFIG_DIR", str(tmp_path / "config"))
    made: list[ChatApp] = []
    monkeypatch.setattr(ChatApp, "run", lambda self: made.append(self))
    chat(model=None, plugins_dir=[], demo=True)
    [app] = made
    assert app.store.path == MEMORY and not app.remember
    app.settings.model = "tiny-char"
    app.persist_settings()
    assert not (tmp_path / "config").exists() and not (tmp_path / "data").exists()


async def test_after_esc_on_beam_search_the_live_header_goes(tmp_path: Path) -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate, hold_after=3, reply_words=10)
    app = make_app(tmp_path, engine, settings=Settings(seed=1, strategy="beam"))
    async with app.run_test(size=(100, 40)) as pilot:
        chat = await ready(pilot, app)
        await pilot.press("f9")
        await type_and_send(pilot, chat, "search")
        title = chat.query_one("#beams-title")
        await wait_until(pilot, lambda: "live" in str(title.render()))
        await pilot.press("escape")
        await wait_until(pilot, lambda: not chat.generating)
        await wait_until(pilot, lambda: "live" not in str(title.render()))
        panel = chat.query_one(BeamPanel)
        assert "N-best" in str(title.render()) or "no search" in str(title.render())
        assert panel.n_best == chat.n_best  # what the list offers is what Enter takes


def test_score_gaps_and_counts_read_right() -> None:
    assert score_gap(-0.0031) == "-0.0031" and score_gap(-1.254) == "-1.25"
    assert score_gap(-0.00001234) == "-1.2e-05" and score_gap(0.0) == "0"
    assert beams_word(1) == "1 beam" and beams_word(3) == "3 beams"


async def test_enter_while_streaming_says_so_once(tmp_path: Path) -> None:
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(gate=gate, hold_after=1))
    async with app.run_test() as pilot:
        chat = await ready(pilot, app)
        await type_and_send(pilot, chat, "first")
        await wait_until(pilot, lambda: chat.job is not None)
        chat.query_one(PromptInput).load_text("second")
        for _ in range(4):
            await pilot.press("enter")
        await wait_until(pilot, lambda: any("still running" in n for n in notes(app)))
        assert len([n for n in notes(app) if "still running" in n]) == 1
        assert chat.query_one(PromptInput).text == "second"  # kept for later
        gate.set()
        await wait_until(pilot, lambda: not chat.generating)


async def test_escape_gives_the_prompt_its_focus_back(tmp_path: Path) -> None:
    app = make_app(tmp_path, settings=Settings(seed=1, panel=True))
    async with app.run_test(size=(120, 40)) as pilot:
        chat = await ready(pilot, app)
        chat.query_one("#seed", Input).focus()
        await wait_until(pilot, lambda: app.focused is chat.query_one("#seed"))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.focused, PromptInput))


async def test_the_first_tab_lands_on_something_visible(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press("tab")
        focused = app.focused
        assert focused is not None and focused.display and focused.size.area > 0
        await wait_until(pilot, lambda: focused.styles.border_left[0] == "thick")


@pytest.mark.parametrize("key, box", [("f1", "#help-box"), ("ctrl+o", "#chats-box")])
async def test_dialogs_fit_in_80_by_24(tmp_path: Path, key: str, box: str) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press(key)
        await wait_until(pilot, lambda: len(app.screen.query(box)) == 1)
        region = app.screen.query_one(box).region
        await wait_until(pilot, lambda: app.screen.query_one(box).region.width > 0)
        region = app.screen.query_one(box).region
        assert region.x >= 0 and region.right <= 80 and region.bottom <= 24


async def test_the_side_panel_narrows_at_80_columns(tmp_path: Path) -> None:
    app = make_app(tmp_path, settings=Settings(seed=1, panel=True))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        panel = chat.query_one("#panel")
        await wait_until(pilot, lambda: panel.size.width > 0)
        assert panel.outer_size.width <= 34  # was 44 of 80
        transcript = chat.query_one("#transcript")
        assert transcript.size.width >= 40


async def test_the_first_screen_says_what_to_do(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        welcome = chat.query_one("#welcome")
        await wait_until(pilot, lambda: "tiny-char" in str(welcome.render()))
        text = str(welcome.render())
        assert "Enter to send" in text and "F1" in text and "F2" in text
        await send(pilot, chat, "hello")
        assert not welcome.display


async def test_model_text_with_escapes_never_reaches_the_terminal(tmp_path: Path) -> None:
    from termlm.tui.safetext import safe_line, safe_text

    evil = "red\x1b[31m\x1b]0;pwned\x07\rover\x9b2J"
    assert "\x1b" not in safe_text(evil) and "\x07" not in safe_text(evil)
    assert len(safe_text(evil)) == len(evil)  # one for one: token offsets still hold
    assert "\n" not in safe_line("a\nb")
    app = make_app(tmp_path, FakeEngine(model_names=("evil\x1b[2Jname",)))
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, evil)
        for widget in (chat.views[0], chat.views[1], chat.query_one("#status")):
            shown = str(widget.render())
            assert not [c for c in shown if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0]
        assert "␛" in str(chat.views[0].render())  # shown, visibly, as what it is


class Boom(FakeEngine):
    def unknown_spans(self, text: str) -> list[tuple[int, int]]:
        raise RuntimeError("an unexpected bug, with a big array: " + "0.1 " * 5000)


async def test_a_crash_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    app = make_app(tmp_path, Boom())
    with pytest.raises(RuntimeError):
        async with app.run_test() as pilot:
            await ready(pilot, app)
            await pilot.press(*"typed")
            await wait_until(pilot, lambda: app.return_code is not None, timeout=10)
    assert app.return_code == 1
    assert app.fatal is not None and len(app.fatal) <= 300 and "\n" not in app.fatal
    assert app.fatal.startswith("RuntimeError: an unexpected bug")
    assert app.draft.startswith("t")  # what was typed is reported, not lost


async def test_tab_from_the_prompt_reaches_the_model_picker(tmp_path: Path) -> None:
    """Was: the first Tab landed on the side panel's container, which shows no focus."""
    app = make_app(tmp_path, settings=Settings(seed=1, panel=True))
    async with app.run_test(size=(120, 35)) as pilot:
        chat = await ready(pilot, app)
        chat.query_one(PromptInput).focus()
        await pilot.press("tab")
        await wait_until(pilot, lambda: app.focused is chat.query_one("#model-select"))
        await pilot.press("enter", "down", "enter")
        await wait_until(pilot, lambda: chat.model is not None and chat.model.name == "tiny-word")


async def test_a_new_search_clears_the_previous_n_best(tmp_path: Path) -> None:
    """Was: while the next search waited for its first step, the panel still offered the
    previous reply's n-best (Enter would have taken a beam of another prompt)."""
    gate = threading.Event()
    engine = FakeEngine(gate=gate, hold_after=0, reply_words=6)
    app = make_app(tmp_path, engine, settings=Settings(seed=1, strategy="beam"))
    async with app.run_test(size=(100, 40)) as pilot:
        chat = await ready(pilot, app)
        await pilot.press("f9")
        gate.set()
        await send(pilot, chat, "first")
        panel = chat.query_one(BeamPanel)
        await wait_until(pilot, lambda: bool(panel.n_best))
        gate.clear()
        await type_and_send(pilot, chat, "second")
        await wait_until(pilot, lambda: chat.job is not None)
        title = chat.query_one("#beams-title")
        await wait_until(pilot, lambda: "N-best" not in str(title.render()))
        assert panel.n_best == []
        gate.set()
        await wait_until(pilot, lambda: not chat.generating)


@pytest.mark.parametrize(
    "key, box", [("f3", "#inspect-box"), ("f5", "#score-box"), ("f6", "#arena-box")]
)
async def test_a_views_key_line_wraps_in_80_columns(tmp_path: Path, key: str, box: str) -> None:
    """Was: the key line of the inspector, the scorer and the arena lost its end at 80 columns
    ("Enter continue wi")."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await ready(pilot, app)
        await send(pilot, chat, "hello")
        await pilot.press(key)
        await wait_until(pilot, lambda: len(app.screen.query(box)) == 1)
        hint = app.screen.query_one(f"{box} .hint")
        await wait_until(pilot, lambda: hint.size.width > 0)
        inner = app.screen.query_one(box).content_region
        assert hint.region.right <= inner.right
        text = str(hint.render())
        assert hint.size.width * hint.size.height >= len(text.strip())  # nothing cut


def test_the_status_line_counts_one_token_in_the_singular() -> None:
    """Was: "1 tokens" after a beam search stopped at its first step."""
    from termlm.tui.widgets import StatusLine

    class Probe(StatusLine):
        shown: object = None

        def update(self, content: object = "", *, layout: bool = True) -> None:
            self.shown = content

    line = Probe()
    line.show(model="m", strategy="beam", mode="continue", tokens=1, rate=None, activity="")
    assert "· 1 token ·" in str(line.shown)
    line.show(model="m", strategy="beam", mode="continue", tokens=2, rate=None, activity="")
    assert "· 2 tokens ·" in str(line.shown)
