"""Results of a worker thread handed to the UI thread, unless the app is closing.

A worker (loading a model, tracing a reply, scoring a text) may finish while the app quits: its
result then has no screen to go to. ``call_from_thread`` would raise once the app has stopped,
and a callback that runs while the screens are being taken down would look for widgets that are
gone; either way the worker fails and the quit ends with an error. Here such a result is dropped,
and so is the failure of an async callback that was still waiting (mounting the option fields, say)
when the app began to close: the widgets it goes on to look for are being taken down.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from textual.app import App


def hand_to_ui(app: App[Any], callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``callback(*args, **kwargs)`` on the UI thread and wait for it; nothing if the app is
    closing (before, or by the time the UI thread gets to it)."""

    async def finish(pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        except Exception:
            if app.is_running:
                raise
            return None  # the app began to close while the callback waited

    def if_running() -> Any:  # an awaitable it returns (an async callback) is awaited there
        if not app.is_running:
            return None
        out = callback(*args, **kwargs)
        return finish(out) if inspect.isawaitable(out) else out

    if not app.is_running:
        return
    try:
        app.call_from_thread(if_running)
    except RuntimeError:  # the app stopped in between
        return
