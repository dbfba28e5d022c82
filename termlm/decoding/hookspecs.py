"""The one hook a termlm plugin module implements.

    from termlm.decoding import hookimpl

    @hookimpl
    def register_plugins(register):
        register(MyStrategy)
        register(MyProcessor)

The host owns naming and collisions: ``register`` records each class with its source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "termlm"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_plugins(register: Callable[[type[Any]], None]) -> None:
    """Call ``register(cls)`` for each strategy or processor class the module provides."""
