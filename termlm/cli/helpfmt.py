"""Help that reads as people expect: flags shown as flags, values with plain metavars, examples.

Every command is built with these classes (``cls=`` in typer), so the help printed by
`termlm`, by a test's CliRunner or by shell completion is the same:
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

from typer.core import TyperCommand, TyperGroup

from termlm.cli.complete import BY_PARAMETER

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


class TidyCommand(TyperCommand):
    """A command whose help reads as termlm's does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = reflow(self.help)

    def get_params(self, ctx: Any) -> list[Any]:  # click adds --help here, per call
        params = super().get_params(ctx)
        for param in params:
            tidy_param(param)
        return params


class TidyGroup(TyperGroup):
    """The `termlm` group itself: the same treatment for its own options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = reflow(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            tidy_param(param)
        return params
