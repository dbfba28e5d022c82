"""Help that reads as people expect: flags shown as flags, values with plain metavars, examples.

Applied once to the click command tree typer builds, so every command gets the same treatment:
* a flag (``--json``) shows no value type (typer would show ``<bool>``, which invites
  ``--json true``);
* a value shows an upper-case metavar (``N``, ``X``, ``TEXT``, ``PATH``) unless it names its own;
* each command's help ends with its examples (termlm.cli.examples);
* model, strategy, level and architecture values complete in the shell (termlm.cli.complete).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from termlm.cli.complete import BY_PARAMETER
from termlm.cli.examples import epilog

_BY_TYPE: dict[Any, str] = {int: "N", float: "X", str: "TEXT", Path: "PATH"}
_BY_NAME = {"settings": "KEY=VALUE", "plugins_dir": "DIR"}  # what the value looks like


def _metavar(param: Any) -> str | None:
    if param.name in _BY_NAME:
        return _BY_NAME[param.name]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    args = getattr(annotation, "__args__", None)
    if args and getattr(annotation, "__origin__", None) is list:
        annotation = args[0]
    return _BY_TYPE.get(annotation)


def tidy_param(param: Any) -> None:
    """typer carries its own copy of click: parameters are told apart by their attributes."""
    is_option = param.param_type_name == "option"
    if is_option and (param.is_flag or param.count):
        param.metavar = ""
    elif is_option and param.metavar is None:
        param.metavar = _metavar(param)
    if param.param_type_name == "argument":
        param.metavar = param.metavar or param.name.upper()
        param.display_type_rich = _no_type  # the name says it; typer would add "<str>"
    if param.name in BY_PARAMETER and getattr(param, "_custom_shell_complete", None) is None:
        param._custom_shell_complete = BY_PARAMETER[param.name]


def _no_type(ctx: Any) -> str:
    return ""


def reflow(text: str) -> str:
    """Paragraphs joined into single lines: the help shows each at the terminal's width."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def tidy(command: Any) -> Any:
    """Tidy a click command built by typer, and its subcommands, in place; returns it."""
    for param in command.params:
        tidy_param(param)
    if command.help:
        command.help = reflow(command.help)
    make_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            tidy_param(option)
        return option

    command.get_help_option = help_option  # click makes the --help option per call
    for name, sub in getattr(command, "commands", {}).items():
        if sub.epilog is None:
            sub.epilog = epilog(name)
        tidy(sub)
    return command
