"""Model states read back from a reply's tokens, always in a worker thread: the UI stays live.

A reply's state may be missing: an older reply of a saved chat (only the newest keeps its state on
disk), or a reply ended by the screen while its strategy was still busy. Reading it again costs a
model call per token, so the screen never does it on its own thread: ``read_back_first`` runs the
read in a worker, and what was asked with what was asked (send the prompt, regenerate, branch,
inspect) once it is done; a prompt sent meanwhile waits in its box.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import work

from termlm.tui.threads import hand_to_ui
from termlm.tui.widgets import PromptInput

if TYPE_CHECKING:
    from textual.screen import Screen

    from termlm.conversation.chat import ChatCore
    from termlm.conversation.tree import Message

    _Base = Screen[None]
else:
    _Base = object


class ReadBack(_Base):
    """The screen's part that reads states back in workers."""

    core: ChatCore
    restating: Message | None
    send_when_ready: bool

    if TYPE_CHECKING:  # provided by the screen

        def refresh_status(self, activity: str = "") -> None: ...

    def read_back_first(self, index: int, then: Callable[[], None], activity: str) -> bool:
        """Whether the state before message ``index`` must be read back first: then it is, in a
        worker, and ``then`` runs after it (the caller returns and is called again)."""
        missing = self.core.unread_before(index)
        if missing is None:
            return False
        if self.restating is None:  # (one read at a time: a second request is dropped)
            self.restating = missing
            self.refresh_status(activity)
            self._read_back_worker(index, missing, then)
        return True

    @work(thread=True, group="restate")
    def _read_back_worker(self, index: int, missing: Message, then: Callable[[], None]) -> None:
        try:
            self.core.state_before(index)
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        hand_to_ui(self.app, self._read_back_done, missing, then, error)

    def _read_back_done(
        self, missing: Message, then: Callable[[], None], error: str | None
    ) -> None:
        if self.restating is not missing:
            return  # the chat changed meanwhile
        self.restating = None
        self.refresh_status("")
        if missing not in self.core.conversation.messages:
            return
        if error is not None:
            self.send_when_ready = False
            self.notify(f"cannot read the reply back ({error})", severity="error", timeout=10)
            return
        then()

    def read_back_stopped(self, message: Message) -> None:
        """A reply ended without its state (its strategy was still busy): read it back now."""
        self.restating = message  # read its state back before the next prompt
        self.refresh_status("stopped (the strategy is still busy; reading the reply back)")
        self._restate_worker(message)

    @work(thread=True, group="restate")
    def _restate_worker(self, message: Message) -> None:
        """Read prompt + reply again (no plugin code runs): the stopped reply's state."""
        try:
            state, error = self.core.restate(message), None
        except Exception as exc:
            state, error = None, f"{type(exc).__name__}: {exc}"
        hand_to_ui(self.app, self._restated, message, state, error)

    def _restated(self, message: Message, state: Any, error: str | None) -> None:
        if self.restating is not message:
            return
        self.restating = None
        if state is not None:
            self.core.keep_state(message, state)
        else:
            self.notify(
                f"cannot read the stopped reply back ({error}); the next prompt continues from"
                " the reply before it",
                severity="warning",
            )
        self.refresh_status("stopped")
        self.send_queued()

    def send_queued(self) -> None:
        """Send the prompt that was submitted while the chat was busy."""
        if self.send_when_ready:
            self.send_when_ready = False
            prompt_box = self.query_one(PromptInput)
            if prompt_box.text.strip():
                prompt_box.post_message(PromptInput.Submitted(prompt_box.text))


__all__ = ["ReadBack"]
