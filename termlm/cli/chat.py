"""`termlm chat`: talk to a model in a terminal app (Textual), offline and without PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer


def chat(
    model: str | None = typer.Argument(
        None, help="Model name (see `termlm models`) or .onnx path (default: the bundled model)."
    ),
    plugins_dir: list[Path] = typer.Option(
        [], "--plugins-dir", help="Extra folder of decoding plugins (repeatable)."
    ),
    demo: bool = typer.Option(
        False, "--demo", help="Chat with a scripted stand-in model: try the app without a model."
    ),
) -> None:
    """Chat with a model: streamed replies, strategies and options, saved conversations."""
    if model is not None and not demo:  # a bad model named on the command line: say so here
        from termlm.modelfile import read_model_meta
        from termlm.runtime.registry import resolve_model

        read_model_meta(resolve_model(model))
    from termlm.conversation.demo import FakeEngine
    from termlm.conversation.engine import Engine, OnnxEngine
    from termlm.tui.app import ChatApp

    engine: Engine = FakeEngine(delay=0.03) if demo else OnnxEngine(plugins_dirs=plugins_dir)
    ChatApp(engine, model=model).run()
