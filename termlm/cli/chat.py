"""`termlm chat`: talk to a model in a terminal app (Textual), offline and without PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer


def chat(
    model: str | None = typer.Argument(
        None, help="Model name (see `termlm models`) or .onnx path (default: the bundled model)."
    ),
    plugins_dir: list[str] = typer.Option(
        [], "--plugins-dir", help="Extra folder of decoding plugins (repeatable)."
    ),
    demo: bool = typer.Option(
        False, "--demo", help="Chat with a scripted stand-in model: try the app without a model."
    ),
) -> None:
    """Chat with a model: streamed replies, strategies and options, saved conversations.

    Settings (strategy, options, presets) are kept in chat.json in the user config folder
    (TERMLM_CONFIG_DIR overrides it; e.g. ~/.config/termlm on Linux), chats in chats.db in the
    user data folder (TERMLM_DATA_DIR overrides it; e.g. ~/.local/share/termlm). Plugins also load
    from TERMLM_PLUGINS_DIR; models are found as `termlm models` finds them.
    """
    if model is not None and not demo:  # a bad model named on the command line: say so here
        from termlm.modelfile import read_model_meta
        from termlm.runtime.registry import resolve_model

        read_model_meta(resolve_model(model))
    from termlm.conversation.settings import load_settings

    settings = load_settings()  # read once: the app starts from these
    if model is None and not demo and settings.model is None:  # the default model, then
        from termlm.runtime.registry import check_default_model

        check_default_model()
    if not _at_a_terminal():
        from termlm.errors import ConfigError

        raise ConfigError(
            "termlm chat needs a terminal: its input or output is a pipe or a file",
            "run it in a terminal; in scripts and pipes, termlm generate continues a prompt",
        )
    from termlm.conversation.demo import FakeEngine
    from termlm.conversation.engine import Engine, OnnxEngine
    from termlm.conversation.store import MEMORY, ChatStore
    from termlm.decoding.registry import EMPTY_FOLDER
    from termlm.tui.app import ChatApp

    if any(not folder.strip() for folder in plugins_dir):
        typer.echo(f"warning: --plugins-dir '': {EMPTY_FOLDER}", err=True)
    folders = [Path(folder) for folder in plugins_dir if folder.strip()]
    engine: Engine
    if demo:  # a stand-in model: nothing it says is saved, and the real settings stay as they are
        engine = FakeEngine(delay=0.03, plugins_dirs=tuple(folders))
        app = ChatApp(engine, model=model, store=ChatStore(MEMORY), remember=False)
    else:
        app = ChatApp(OnnxEngine(plugins_dirs=folders), model=model, settings=settings)
    app.run()
    if app.return_code:
        import sys

        print(f"error: the chat stopped: {app.fatal or 'an unexpected error'}", file=sys.stderr)
        where = app.store.problem or f"your chats are saved in {app.store.path}"
        print(f"  {where}; run `termlm chat` again", file=sys.stderr)
        if app.draft.strip():
            print(f"  the prompt you were typing: {app.draft!r}", file=sys.stderr)
        raise typer.Exit(1)


def _at_a_terminal() -> bool:
    """Whether keys come from a terminal and the screen goes to one (the app would otherwise wait
    for keys that never come, or write its screen's escape codes into a file)."""
    import sys

    from termlm.cli.color import is_terminal

    return is_terminal(sys.stdin) and is_terminal(sys.stdout)
