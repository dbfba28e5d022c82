"""The chat under faults, on real tiny exported models: model files that vanish, plugins that hang."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from textual.widgets import Select  # noqa: E402
from tui_helpers import export_tiny_models, make_app, wait_until  # noqa: E402

from termlm.conversation.engine import OnnxEngine  # noqa: E402
from termlm.conversation.settings import Settings  # noqa: E402
from termlm.tui.chat_screen import ChatScreen  # noqa: E402
from termlm.tui.widgets import MessageView, PromptInput  # noqa: E402

pytestmark = pytest.mark.anyio

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me.\n\n" * 4


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny untrained char models (an LSTM and a GRU), exported once for the module."""
    folder = tmp_path_factory.mktemp("exported")
    return export_tiny_models(folder, TEXT, {"tiny-lstm": "lstm", "tiny-gru": "gru"})


@pytest.fixture
def models(exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder of this test's own (the tests remove and damage its files)."""
    folder = tmp_path / "models"
    shutil.copytree(exported, folder)
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(folder))
    return folder


async def send(pilot: Any, chat: ChatScreen, text: str) -> None:
    chat.query_one(PromptInput).load_text(text)
    chat.query_one(PromptInput).focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: not chat.generating)


def titles_and_messages(app: Any) -> list[str]:
    return [f"{n.title} | {n.message}" for n in app._notifications]


# ------------------------------------------------------------------ a model file that goes away


@pytest.mark.parametrize("fault", ["removed", "garbage"])
async def test_model_file_removed_while_the_chat_is_open(
    tmp_path: Path, models: Path, fault: str
) -> None:
    engine = OnnxEngine(entry_points=False, user_dir=False)
    settings = Settings(seed=3, max_tokens=12, panel=False)
    app = make_app(tmp_path, engine, settings=settings, model="tiny-lstm")
    async with app.run_test(size=(120, 50)) as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None)
        await send(pilot, chat, "ROMEO:\n")
        first_chat = chat.conversation.chat_id
        lstm_sha = chat.model.sha256 if chat.model else ""

        path = models / "tiny-lstm.onnx"
        if fault == "removed":
            path.unlink()
        else:
            path.write_bytes(b"\x00garbage, not a model\xff" * 64)

        # the session goes on: onnxruntime holds the model in memory
        await send(pilot, chat, "JULIET:\n")
        replies = [m for m in chat.conversation.messages if m.role == "model"]
        assert [r.stop_reason for r in replies] == ["length", "length"]
        assert replies[1].state is not None

        # the picker reads the folder again: the model in use stays listed, the user is told
        await pilot.press("f2")
        await wait_until(pilot, lambda: "model file changed" in " ".join(titles_and_messages(app)))
        listed = [value for _, value in chat.query_one("#model-select", Select)._options]
        assert "tiny-lstm" in listed and "tiny-gru" in listed

        # switch to another model (a new chat), then back: refused with a notification, the
        # model that works stays, and the prompt being typed is kept
        chat.query_one("#model-select", Select).value = "tiny-gru"
        await wait_until(pilot, lambda: chat.model is not None and chat.model.name == "tiny-gru")
        await wait_until(pilot, lambda: chat.conversation.messages == [])  # a new chat
        chat.query_one(PromptInput).load_text("half a thought")
        before = len(app._notifications)
        listed = [value for _, value in chat.query_one("#model-select", Select)._options]
        if fault == "garbage":  # listed as unusable; picking it is refused
            assert "tiny-lstm" in listed
            chat.query_one("#model-select", Select).value = "tiny-lstm"
        else:  # no longer listed; a load by name (a remembered setting, a chat) is refused
            assert "tiny-lstm" not in listed
            chat.start_load("tiny-lstm")
        await wait_until(pilot, lambda: not chat.model_loading and len(app._notifications) > before)
        assert any("cannot load tiny-lstm" in str(n.title) for n in app._notifications)
        assert chat.model is not None and chat.model.name == "tiny-gru"
        assert chat.query_one("#model-select", Select).value == "tiny-gru"
        assert app.settings.model == "tiny-gru"
        assert chat.query_one(PromptInput).text == "half a thought"
        await send(pilot, chat, "half a thought")
        assert chat.conversation.messages[-1].stop_reason == "length"

        # reopening the first chat (made with the missing model): a notification, no crash
        chat.query_one(PromptInput).load_text("typed, not sent")
        before = len(app._notifications)
        chat.open_chat(first_chat)
        await wait_until(pilot, lambda: not chat.model_loading and len(app._notifications) > before)
        assert any("cannot load tiny-lstm" in str(n.title) for n in app._notifications)
        assert chat.conversation.chat_id == first_chat and len(chat.conversation.messages) == 4
        assert chat.chat_model is not None and chat.chat_model.sha256 == lstm_sha
        assert chat.query_one(PromptInput).text == "typed, not sent"
        # the GRU cannot continue an LSTM's states: sending is refused, the text stays
        await pilot.press("enter")
        await pilot.pause()
        assert chat.query_one(PromptInput).text == "typed, not sent"
        assert len(chat.conversation.messages) == 4

        # picking a model that works starts a new chat with it
        chat.query_one("#model-select", Select).value = "tiny-gru"
        await wait_until(pilot, lambda: chat.model is not None and chat.model.name == "tiny-gru")
        await wait_until(pilot, lambda: chat.conversation.messages == [])
        await send(pilot, chat, "typed, not sent")
        assert chat.conversation.messages[-1].stop_reason == "length"


# ------------------------------------------------------------------ a plugin that hangs

HANGING = """
    import threading
    import time
    from typing import ClassVar

    import numpy as np

    from termlm.decoding import hookimpl


    class Hang:
        name: ClassVar[str] = "hang"
        description: ClassVar[str] = "Three tokens, then stuck inside its own code."
        options: ClassVar[tuple] = ()
        entered = threading.Event()
        release = threading.Event()

        def run(self, ctx):
            while True:
                if ctx.session.generated.shape[1] == 3:
                    Hang.entered.set()
                    while not Hang.release.is_set():  # never yields, never looks at cancel
                        time.sleep(0.01)
                scores = ctx.scores()[0]
                token = int(np.argmax(scores))
                ctx.session.feed([token])
                yield ctx.choice(scores, token)


    class Stall:
        name: ClassVar[str] = "stall"
        description: ClassVar[str] = "When armed, stuck at the fourth token, once."
        options: ClassVar[tuple] = ()
        armed = threading.Event()
        entered = threading.Event()
        release = threading.Event()
        calls = 0

        def process(self, logits, history, info):
            if Stall.armed.is_set():
                Stall.calls += 1
                if Stall.calls == 4:
                    Stall.armed.clear()
                    Stall.entered.set()
                    while not Stall.release.is_set():
                        time.sleep(0.01)
            return logits


    @hookimpl
    def register_plugins(register):
        register(Hang)
        register(Stall)
"""


class RecordingEngine(OnnxEngine):
    """The real engine with a plugin folder, noting the state each generation starts from."""

    def __init__(self, plugins: Path) -> None:
        super().__init__([plugins], entry_points=False, user_dir=False)
        self.states: list[Any] = []

    def generate(self, prompt: Any, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        self.states.append(kwargs.get("state"))
        return super().generate(prompt, **kwargs)


@pytest.mark.parametrize("culprit", ["strategy", "processor"])
async def test_escape_stops_a_plugin_that_hangs(tmp_path: Path, models: Path, culprit: str) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "hanging.py").write_text(textwrap.dedent(HANGING), encoding="utf-8")
    engine = RecordingEngine(folder)
    hang = engine.registry.strategy_class("hang")
    stall = next(c for c in engine.registry.processor_classes() if c.name == "stall")
    culprit_cls = hang if culprit == "strategy" else stall
    strategy = "hang" if culprit == "strategy" else "greedy"
    if culprit == "processor":
        stall.armed.set()
    settings = Settings(seed=1, strategy=strategy, max_tokens=40)
    app = make_app(tmp_path, engine, settings=settings, model="tiny-lstm")
    try:
        async with app.run_test() as pilot:
            chat = app.chat
            await wait_until(pilot, lambda: chat.model is not None)
            chat.query_one(PromptInput).load_text("ROMEO:\n")
            await pilot.press("enter")
            await wait_until(pilot, culprit_cls.entered.is_set)
            stuck = chat.job
            assert stuck is not None
            await wait_until(pilot, lambda: stuck.tokens == 3)
            assert chat.reply_view is not None and chat.reply_view.body != ""
            shown = chat.reply_view.body

            await pilot.press("escape")
            await wait_until(pilot, lambda: chat.job is None, timeout=5)
            assert not stuck.finished  # the plugin is still stuck: the UI did not wait for it
            await wait_until(pilot, lambda: not chat.generating)  # the reply's state read back
            reply = chat.conversation.messages[-1]
            assert reply.role == "model" and reply.stop_reason == "cancelled"
            assert reply.tokens == 3 and reply.text == shown
            assert "stopped" in str(chat.views[-1].border_subtitle)
            assert reply.state is not None and reply.state["_recent"][0, -3:].tolist() == [
                e.token_id for e in reply.events
            ]
            saved, *_ = app.store.load_chat(chat.conversation.chat_id or 0)
            assert saved.messages[-1].state is not None  # the state reached the database too

            # responsive, and the next prompt works, from the stopped reply's state
            await pilot.press(*"x")
            assert chat.query_one(PromptInput).text.endswith("x")
            app.settings.strategy = "greedy"
            await send(pilot, chat, "JULIET:\n")
            newest = chat.conversation.messages[-1]
            assert newest.stop_reason == "length" and newest.tokens == 40
            assert engine.states[-1] is reply.state
            transcript = [view.body for view in chat.query(MessageView)]

            # the stuck thread ends later: whatever it still produces is dropped
            culprit_cls.release.set()
            await wait_until(pilot, lambda: stuck.finished)
            for _ in range(5):
                await pilot.pause(0.05)
            assert [view.body for view in chat.query(MessageView)] == transcript
            assert len(chat.conversation.messages) == 4
            assert chat.conversation.messages[-1] is newest and newest.tokens == 40
    finally:
        culprit_cls.release.set()
        stall.armed.clear()
