"""The chat's Train view, driven by the pilot: a real tiny training (a `termlm train` process)
to an exported model that the chat then loads and talks with; Esc and quitting mid-training; the
view where the train extra is missing; snapshots of the curve and of the view."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")

from textual.widgets import Button, Static
from tui_helpers import make_app, wait_until

from termlm.runs.job import JobState
from termlm.tui.train import screen as train_screen
from termlm.tui.train.confirm import ConfirmScreen
from termlm.tui.train.curve import curve_text
from termlm.tui.train.pathinput import PathInput, path_matches
from termlm.tui.widgets import PromptInput

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(__file__).parent / "snapshots_text"
TINY = ["--hidden", "16", "--embed", "8", "--context", "16", "--batch-size", "4", "--threads", "1"]
TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me.\n\n" * 30


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder to work in (runs/ and exported/ land here); the trainer imports this checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    (tmp_path / "play.txt").write_text(TEXT, encoding="utf-8")
    return tmp_path


async def open_view(pilot: Any, corpus: str, extra: list[str]) -> Any:
    app = pilot.app
    await wait_until(pilot, lambda: app.chat.model is not None)
    await pilot.press("f10")
    await wait_until(pilot, lambda: app.train_view is not None and app.screen is app.train_view)
    view = app.train_view
    view.extra = extra
    view.query_one(PathInput).value = corpus
    return view


def test_real_training_from_the_chat_to_a_model_it_talks_with(where: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import asyncio

    from termlm.conversation.engine import OnnxEngine
    from termlm.conversation.settings import Settings

    engine = OnnxEngine(entry_points=False, user_dir=False)
    app = make_app(where, engine, settings=Settings(seed=3, max_tokens=12))

    async def drive() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            view = await open_view(
                pilot, "play.txt", ["--max-steps", "12", "--eval-every", "4", *TINY]
            )
            await pilot.press("enter")
            await wait_until(pilot, lambda: view.job is not None)
            job = view.job
            await wait_until(pilot, lambda: not job.running, timeout=180)
            assert job.state is JobState.FINISHED, job.problem
            await wait_until(pilot, lambda: "finished" in str(view.query_one("#stats").render()))
            assert "e: export" in str(view.query_one("#next").render())
            assert len(job.curves[0].records) == 3
            assert "step     4" in str(view.query_one("#samples").render())
            await pilot.press("e")
            await wait_until(pilot, lambda: job.state is not JobState.EXPORTING, timeout=180)
            assert job.state is JobState.EXPORTED, job.problem
            assert job.model_path is not None and job.model_path.is_file()
            await pilot.press("u")
            chat = app.chat
            await wait_until(pilot, lambda: app.screen is chat)
            await wait_until(
                pilot,
                lambda: chat.model is not None and Path(chat.model.path) == job.model_path,
                timeout=60,
            )
            chat.query_one(PromptInput).load_text("ROMEO:\n")
            chat.query_one(PromptInput).focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: not chat.generating, timeout=60)
            reply = chat.conversation.messages[-1]
            assert reply.role == "model" and reply.tokens == 12
            assert reply.model_name == chat.model.name

    asyncio.run(drive())


def test_esc_asks_then_stops_and_quitting_mid_training_leaves_no_process(where: Path) -> None:
    pytest.importorskip("torch")
    import asyncio

    app = make_app(where)
    seen: dict[str, Any] = {}

    async def drive() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            view = await open_view(
                pilot, "play.txt", ["--max-steps", "100000", "--eval-every", "5", *TINY]
            )
            await pilot.press("enter")
            await wait_until(pilot, lambda: view.job is not None)
            job = view.job
            await wait_until(pilot, lambda: job.state is JobState.TRAINING, timeout=120)
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")  # no: it goes on
            await wait_until(pilot, lambda: app.screen is view)
            assert job.state is JobState.TRAINING
            await pilot.press("f10")  # back to the chat: training goes on
            await wait_until(pilot, lambda: app.screen is app.chat)
            await pilot.press("ctrl+q")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "Stop it and quit?" in str(app.screen.query(Static).first().render())
            seen["process"] = job._process.popen
            await pilot.press("y")
            await wait_until(pilot, lambda: not app.is_running, timeout=60)

    asyncio.run(drive())
    assert seen["process"].poll() is not None  # the trainer ended with the chat
    job = app.train_view.job
    assert job.state is JobState.STOPPED and job.resumable
    assert (job.request.folder / "interrupted.json").is_file()


def test_without_the_train_extra_the_view_says_what_to_install(
    where: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setattr(train_screen, "missing_train_modules", lambda: ["torch", "onnx"])
    app = make_app(where)

    async def drive() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            view = await open_view(pilot, "play.txt", [])
            problem = str(view.query_one("#problem").render())
            assert "pip install 'termlm[train]'" in problem and "torch, onnx" in problem
            assert view.query_one("#start", Button).disabled
            await pilot.press("enter")
            await pilot.pause()
            assert view.job is None  # nothing started
            await pilot.press("escape")
            chat = app.chat
            await wait_until(pilot, lambda: app.screen is chat)
            chat.query_one(PromptInput).load_text("still here")
            await pilot.press("enter")
            await wait_until(pilot, lambda: not chat.generating)
            assert chat.conversation.messages[-1].role == "model"  # the chat is unharmed

    asyncio.run(drive())


def test_path_completion(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "novel.txt").write_text("x")
    (tmp_path / ".hidden.txt").write_text("x")
    base = str(tmp_path) + "/no"
    assert path_matches(base) == [base + "tes/", base + "vel.txt"]
    assert path_matches(str(tmp_path) + "/") == [f"{tmp_path}/notes/", f"{tmp_path}/novel.txt"]
    assert path_matches(str(tmp_path) + "/.h") == [f"{tmp_path}/.hidden.txt"]
    assert path_matches(str(tmp_path / "nowhere" / "x")) == []


def fixed_records() -> list[dict[str, Any]]:
    losses = [(3.3, 3.2), (2.6, 2.7), (2.2, 2.4), (1.9, 2.3), (1.7, 2.3)]
    return [
        {"step": 50 * i, "train_loss": t, "val_loss": v, "sample": f"sample {i}"}
        for i, (t, v) in enumerate(losses, 1)
    ]


def test_curve_snapshot() -> None:
    import os

    text = curve_text(fixed_records(), width=76, height=12)
    path = SNAPSHOTS / "train_view_curve.txt"
    if os.environ.get("TERMLM_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
    assert "• train   x validation" in text and "steps" in text
    assert curve_text(fixed_records()[:1], 76, 12).startswith("the curve starts")


def scripted_trainer() -> str:
    """A trainer that says what a real one says, with fixed figures (for the snapshot)."""
    events: list[dict[str, Any]] = [
        {"event": "setup", "run_dir": "runs/snap", "arch": "lstm", "params": 8115},
        {"event": "start", "step": 0, "elapsed": 0.0, "total_steps": 250, "budget": 120.0},
        *({"event": "validation", "improved": True, **r} for r in fixed_records()),
        {
            "event": "progress",
            "step": 250,
            "elapsed": 61.0,
            "total_steps": 250,
            "budget": 120.0,
            "loss": 1.7,
            "tokens_per_s": 12345.0,
        },
        {"event": "end", "result": {"steps": 250, "run_dir": "runs/snap"}},
    ]
    return "".join(f"print({json.dumps(json.dumps(e))}, flush=True)\n" for e in events)


def test_train_view_snapshot(
    snap_compare: Any, where: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pytest_textual_snapshot")
    import subprocess

    from termlm.runs import job as job_module
    from termlm.runs import plan

    monkeypatch.setattr(plan, "missing_train_modules", lambda: [])
    monkeypatch.setattr(train_screen, "missing_train_modules", lambda: [])
    code = scripted_trainer()

    def scripted(command: list[str]) -> subprocess.Popen[str]:
        return job_module.launch([sys.executable, "-c", code])

    app = make_app(where)

    async def run_before(pilot: Any) -> None:
        view = await open_view(pilot, "play.txt", [])
        view.launcher = scripted
        view.run_name = "snap"
        await pilot.press("enter")
        await wait_until(pilot, lambda: view.job is not None and not view.job.running)
        await wait_until(pilot, lambda: "finished" in str(view.query_one("#stats").render()))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


TORCH_FREE = """
import asyncio, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")
        return None

sys.meta_path.insert(0, Block())
sys.path.insert(0, {tests!r})
from pathlib import Path
from tui_helpers import make_app, wait_until

async def main():
    app = make_app(Path({where!r}))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.chat.model is not None)
        await pilot.press("f10")
        await wait_until(pilot, lambda: app.train_view is not None)
        await pilot.pause()
        print(app.train_view.query_one("#problem").render())
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.chat)
    print("torch" in sys.modules)

asyncio.run(main())
"""


def test_the_train_view_never_imports_torch(where: Path) -> None:
    """With torch impossible to import (the plain install), the view opens and says why."""
    import subprocess

    code = TORCH_FREE.format(tests=str(Path(__file__).parent), where=str(where))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=where
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "False"
    assert "pip install 'termlm[train]'" in " ".join(lines[:-1])


def test_a_wrong_path_or_budget_is_said_under_the_form(
    where: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from termlm.runs import plan

    monkeypatch.setattr(plan, "missing_train_modules", lambda: [])
    monkeypatch.setattr(train_screen, "missing_train_modules", lambda: [])
    app = make_app(where)

    async def drive() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            view = await open_view(pilot, "nowhere.txt", [])
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: "no file at" in str(view.query_one("#problem").render())
            )
            assert view.job is None and view.query_one("#train-form").display
            view.query_one(PathInput).value = "play.txt"
            view.query_one("#minutes").value = "0"
            await pilot.press("enter")
            await wait_until(pilot, lambda: "budget" in str(view.query_one("#problem").render()))
            assert view.job is None

    asyncio.run(drive())
