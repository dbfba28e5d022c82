"""Shared pieces of the chat tests: a wait helper and an app factory on a fake engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from termlm.conversation.demo import FakeEngine
from termlm.conversation.engine import Engine
from termlm.conversation.settings import Settings
from termlm.conversation.store import ChatStore
from termlm.tui.app import ChatApp


async def wait_until(pilot: object, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until ``condition`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.01)  # type: ignore[attr-defined]


def make_app(
    tmp_path: Path,
    engine: Engine | None = None,
    *,
    settings: Settings | None = None,
    model: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ChatApp:
    return ChatApp(
        engine or FakeEngine(),
        model=model,
        store=ChatStore(tmp_path / "chats.db"),
        settings=settings or Settings(seed=7),
        settings_path=tmp_path / "chat.json",
        clock=clock,
    )


def export_tiny_models(folder: Path, text: str, models: dict[str, str], *, embed: int = 16) -> Path:
    """Untrained char models exported into ``folder``: ``models`` maps a name to its arch."""
    import torch

    from termlm.config import ModelConfig
    from termlm.export import export_model
    from termlm.tokenizers import fit_tokenizer
    from termlm.training.models import build_model

    tokenizer = fit_tokenizer("char", text)
    for name, arch in models.items():
        torch.manual_seed(0)
        config = ModelConfig(
            arch=arch,
            vocab_size=tokenizer.vocab_size,
            context=32,
            embed=embed,
            hidden=16,
            layers=1,
            dropout=0.0,
        )
        export_model(
            build_model(config).eval(),
            tokenizer.to_json(),
            card={"corpus": "test", "val_loss": 3.0},
            name=name,
            out_path=folder / f"{name}.onnx",
        )
    return folder
