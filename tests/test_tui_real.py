"""The chat app on a real exported model: a tiny LSTM trained on nothing, exported in the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("textual")
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from textual.widgets import Select  # noqa: E402
from tui_helpers import export_tiny_models, make_app, wait_until  # noqa: E402

from termlm.conversation.engine import OnnxEngine  # noqa: E402
from termlm.conversation.settings import Settings  # noqa: E402
from termlm.tui.panel import OptionField  # noqa: E402
from termlm.tui.widgets import PromptInput  # noqa: E402

pytestmark = pytest.mark.anyio

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me.\n\n" * 4


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    return export_tiny_models(folder, TEXT, {"tiny-lstm": "lstm", "tiny-gru": "gru"})


class RecordingEngine(OnnxEngine):
    """The real engine, noting the prompt and state of every generation."""

    def __init__(self) -> None:
        super().__init__(entry_points=False, user_dir=False)
        self.calls: list[dict[str, Any]] = []

    def generate(self, prompt: str, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        self.calls.append({"prompt": prompt, "state": kwargs.get("state")})
        return super().generate(prompt, **kwargs)


@pytest.fixture
def engine(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> RecordingEngine:
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(models_dir))
    return RecordingEngine()


async def send(pilot: Any, chat: Any, text: str) -> None:
    chat.query_one(PromptInput).load_text(text)
    chat.query_one(PromptInput).focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: not chat.generating, timeout=30)


async def test_real_model_chat_undo_regenerate_and_reopen(
    tmp_path: Path, engine: RecordingEngine
) -> None:
    settings = Settings(seed=11, max_tokens=24)
    app = make_app(tmp_path, engine, settings=settings, model="tiny-lstm")
    async with app.run_test() as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None, timeout=30)
        assert chat.model is not None and chat.model.arch == "lstm" and chat.model.level == "char"
        assert len(chat.model.sha256) == 64
        await send(pilot, chat, "ROMEO:\n")
        reply = chat.conversation.messages[-1]
        assert reply.role == "model" and reply.stop_reason == "length" and reply.tokens == 24
        assert reply.state is not None and {"h", "c"} <= set(reply.state)
        assert chat.views[-1].body == reply.text

        await pilot.press("ctrl+r")  # same seed, same state: the same text again
        await wait_until(pilot, lambda: not chat.generating, timeout=30)
        again = chat.conversation.messages[-1]
        assert again.text == reply.text and engine.calls[1]["state"] is None

        await send(pilot, chat, "JULIET:\n")
        assert engine.calls[-1]["prompt"] == "JULIET:\n"
        assert engine.calls[-1]["state"] is again.state
        await pilot.press("ctrl+z")
        await wait_until(pilot, lambda: len(chat.conversation.messages) == 2)
        assert chat.query_one(PromptInput).text == "JULIET:\n"
        stored = chat.conversation.last_state()
        assert stored is not None

    reopened = RecordingEngine()
    app = make_app(tmp_path, reopened, settings=settings, model="tiny-lstm")
    async with app.run_test() as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None, timeout=30)
        chat.open_chat(app.store.list_chats()[0].id)
        await wait_until(pilot, lambda: len(chat.views) == 2)
        assert len(chat.conversation.messages) == 2
        await send(pilot, chat, "more")
        call = reopened.calls[0]
        assert call["prompt"] == "more"
        for name, value in stored.items():
            np.testing.assert_array_equal(call["state"][name], value)


async def test_real_model_escape_stops(tmp_path: Path, engine: RecordingEngine) -> None:
    settings = Settings(seed=1, max_tokens=100_000)
    app = make_app(tmp_path, engine, settings=settings, model="tiny-lstm")
    async with app.run_test() as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None, timeout=30)
        chat.query_one(PromptInput).load_text("go on")
        await pilot.press("enter")
        await wait_until(pilot, lambda: chat.reply_view is not None and chat.reply_view.body != "")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not chat.generating, timeout=5)
        reply = chat.conversation.messages[-1]
        assert reply.stop_reason == "cancelled" and 0 < reply.tokens < 100_000


async def test_real_strategies_fill_the_form(tmp_path: Path, engine: RecordingEngine) -> None:
    app = make_app(tmp_path, engine, model="tiny-gru", settings=Settings(seed=2, panel=True))
    async with app.run_test(size=(120, 60)) as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None, timeout=30)
        await wait_until(pilot, lambda: len(chat.query(OptionField)) > 0)
        strategies = [value for _, value in chat.query_one("#strategy-select", Select)._options]
        assert {"greedy", "sample", "beam"} <= set(strategies)
        models = [value for _, value in chat.query_one("#model-select", Select)._options]
        assert {"tiny-lstm", "tiny-gru"} <= set(models)
        assert next(f.spec.name for f in chat.query(OptionField)) == "temperature"

        chat.query_one("#strategy-select", Select).value = "beam"
        await wait_until(  # the fields are replaced: there is a moment with none
            pilot, lambda: [f.spec.name for f in chat.query(OptionField)][:1] == ["num_beams"]
        )
        field = next(f for f in chat.query(OptionField) if f.spec.name == "num_beams")
        await wait_until(pilot, lambda: len(field.query("Input")) == 1)
        box = field.query_one("Input")
        box.value = "64"  # type: ignore[attr-defined]
        error = field.query_one(".field-error")
        await wait_until(pilot, lambda: "num_beams must be in [1, 32]" in str(error.render()))
        box.value = "2"  # type: ignore[attr-defined]
        await wait_until(pilot, lambda: app.settings.options_for("beam").get("num_beams") == 2)

        await send(pilot, chat, "ROMEO:")
        reply = chat.conversation.messages[-1]
        assert reply.strategy == "beam" and reply.options["num_beams"] == 2
        assert reply.stop_reason in ("length", "eos") and reply.state is not None


def test_the_chat_runtime_never_imports_torch(models_dir: Path) -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import termlm.cli.chat, termlm.tui.app\n"
        "from termlm.conversation.engine import OnnxEngine\n"
        "engine = OnnxEngine(entry_points=False, user_dir=False)\n"
        "engine.load('tiny-lstm')\n"
        "events = list(engine.generate('ROMEO:', strategy='sample', options={},"
        " max_new_tokens=5, seed=1))\n"
        "assert events[-1].result.stop_reason == 'length', events[-1]\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "TERMLM_MODELS_DIR": str(models_dir)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


async def test_same_seed_same_text_in_the_chat_and_in_generate(
    tmp_path: Path, engine: RecordingEngine, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from termlm.cli.app import main

    app = make_app(tmp_path, engine, settings=Settings(seed=5, max_tokens=40), model="tiny-lstm")
    async with app.run_test() as pilot:
        chat = app.chat
        await wait_until(pilot, lambda: chat.model is not None, timeout=30)
        await send(pilot, chat, "ROMEO:\n")
        reply = chat.conversation.messages[-1]
    assert reply.tokens == 40
    capsys.readouterr()
    args = ["generate", str(models_dir / "tiny-lstm.onnx"), "--prompt", "ROMEO:\n"]
    with pytest.raises(SystemExit) as done:
        main([*args, "-n", "40", "--seed", "5", "-d", "sample", "--json"])
    assert done.value.code in (0, None)
    generated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert generated["text"] == reply.text
