"""`termlm`: the command-line entry point. Registers every command; imports nothing heavy."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from termlm import __version__
from termlm.cli.helpfmt import TidyGroup
from termlm.errors import TermlmError

app = typer.Typer(
    name="termlm",
    cls=TidyGroup,
    help="Train small language models on any text and talk to them in the terminal, offline.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"termlm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Show the full traceback on errors; may come anywhere on the line.",
    ),
    no_color: bool = typer.Option(
        False, "--no-color", help="No colour (as NO_COLOR=1 does); may come anywhere on the line."
    ),
) -> None:
    """Train small language models on any text and talk to them in the terminal, offline."""


class _Interrupted(Exception):
    """Ctrl-C inside a command (typer would otherwise end it silently with exit code 130)."""


DEBUG_FLAG = "--debug"
DEBUG_HINT = "add --debug anywhere on the command line to see the traceback"


def take_debug_flag(args: list[str]) -> tuple[list[str], bool]:
    """Remove every --debug before a `--`: whether there was one, and the arguments left.

    The root command still declares --debug (for its help); taking it out here lets it come
    after the subcommand too (`termlm generate M --debug`).
    """
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != DEBUG_FLAG]
    return kept + args[end:], len(kept) != end


def _guarded(name: str, command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from termlm.cli.extras import require

        require(name)  # train, bakeoff, export: one line when the train extra is missing
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            raise _Interrupted from exc

    return run


def _register() -> None:
    if app.registered_commands:  # main() may run more than once in a process (tests)
        return
    from termlm.cli import commands
    from termlm.cli.examples import epilog
    from termlm.cli.extras import NEEDS, PANEL, PLAIN_PANEL
    from termlm.cli.helpfmt import TidyCommand

    for command in commands.COMMANDS:
        name = command.__name__.rstrip("_").replace("_", "-")
        panel = PANEL if name in NEEDS else PLAIN_PANEL
        app.command(name=name, cls=TidyCommand, epilog=epilog(name), rich_help_panel=panel)(
            _guarded(name, command)
        )


def command() -> Any:
    """The click command tree typer builds (for tests and tools)."""
    _register()
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn TermlmError into a short message and exit code 1."""
    from termlm.cli.color import take_no_color_flag

    args, debug = take_debug_flag(take_no_color_flag(list(sys.argv[1:] if argv is None else argv)))
    try:
        _register()
        app(args=[DEBUG_FLAG, *args] if debug else args, prog_name="termlm")
    except TermlmError as exc:
        if debug:
            raise
        from termlm.textsafe import safe_text

        _error(safe_text(exc.message))
        if exc.hint:
            typer.echo(safe_text(exc.hint), err=True)
        sys.exit(1)
    except (KeyboardInterrupt, _Interrupted):
        if debug:
            raise
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # `termlm ... | head`: the reader left; stop quietly
        _silence_stdout()
        sys.exit(0)
    except OSError as exc:  # a full disk, a missing permission: the system's own words
        if debug:
            raise
        from termlm.textsafe import safe_line

        where = f": {safe_line(str(exc.filename))}" if exc.filename else ""
        _error(f"{safe_line(str(exc.strerror or exc))}{where}")
        typer.echo(f"check the free space and the permissions; {DEBUG_HINT}", err=True)
        sys.exit(1)


def _error(message: str) -> None:
    from termlm.cli.color import styled

    typer.echo(styled(f"error: {message}", sys.stderr, fg="red"), err=True)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's exit flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
