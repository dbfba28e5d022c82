"""Shell completion of values: model names and decoding strategies from what is installed.

`termlm --install-completion` installs typer's completion script for the current shell; these
functions answer it. Each is quiet on failure: a broken model folder must not break the shell.
"""

from __future__ import annotations

from typing import Any

LEVELS = ("word", "char", "bpe")
ARCHS = ("rnn", "lstm", "gru", "attention", "transformer")


def _matching(values: list[str], incomplete: str) -> list[str]:
    return sorted({v for v in values if v.startswith(incomplete)})


def model_names(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """The names `termlm models` lists (the usable ones)."""
    try:
        from termlm.runtime.registry import find_models

        names = [entry.name for entry in find_models() if entry.error is None]
    except Exception:  # completion must never fail loudly
        return []
    return _matching(names, incomplete)


def strategy_names(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """The decoding strategies `termlm plugins` lists, built-in and installed."""
    try:
        from termlm.decoding import build_plugin_manager

        names = list(build_plugin_manager().strategy_names())
    except Exception:  # completion must never fail loudly
        return []
    return _matching(names, incomplete)


def levels(ctx: Any, param: Any, incomplete: str) -> list[str]:
    return _matching(list(LEVELS), incomplete)


def archs(ctx: Any, param: Any, incomplete: str) -> list[str]:
    return _matching(list(ARCHS), incomplete)


# parameter name (as the command functions spell it) -> its completer
BY_PARAMETER = {
    "model": model_names,
    "compare": model_names,
    "decoder": strategy_names,
    "level": levels,
    "arch": archs,
}
