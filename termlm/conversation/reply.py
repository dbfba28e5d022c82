"""One reply in flight, as an explicit state machine, and the thread that feeds it.

    idle --start--> streaming --stop--> stopping --end--> stopped --save--> saved
                        \\______________________end______/^

* ``idle``: asked for, nothing run yet.
* ``streaming``: a daemon thread runs the engine and pushes its events into a locked buffer; the
  owner drains the buffer when it likes (the chat on a timer, ``termlm generate`` in a loop).
* ``stopping``: asked to stop (Escape, Ctrl-C, quit): the cancel event is set, the engine ends at
  its next step with the text so far.
* ``stopped``: a result exists (the engine's own, or one made from the events so far when the
  engine did not end in time). ``result`` and ``events`` say what exists.
* ``saved``: the owner has stored the reply; nothing of this job changes any more.

A job can also be ``discarded`` (its chat was deleted, the app switched away): from then on
nothing it produces is shown or saved, whatever its thread still does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from termlm.errors import PluginError, TermlmError

if TYPE_CHECKING:
    from termlm.decoding.events import BeamsEvent, Event, GenerationResult, TokenEvent
    from termlm.runtime.types import State


class ReplyState(Enum):
    IDLE = "idle"
    STREAMING = "streaming"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SAVED = "saved"
    DISCARDED = "discarded"


class BadTransition(RuntimeError):
    """A reply job was asked to do something its state does not allow (a programming error)."""


_END = object()


@dataclass
class ReplyJob:
    """What was asked for one reply, what came back so far, and where it stands."""

    prompt: str | list[int]
    state: State | None  # the model state the prompt is fed on
    strategy: str
    options: dict[str, Any]
    seed: int
    max_tokens: int
    stop: tuple[str, ...] = ()
    prefix: list[TokenEvent] = field(default_factory=list)  # a branch: the reply's kept tokens
    cancel: threading.Event = field(default_factory=threading.Event)
    phase: ReplyState = ReplyState.IDLE
    events: list[TokenEvent] = field(default_factory=list)  # the new tokens drained so far
    live: BeamsEvent | None = None  # the newest beams drained (beam search)
    result: GenerationResult | None = None  # set on entering ``stopped``
    failure: TermlmError | None = None  # the engine refused before any token
    started: float = 0.0
    stop_requested: float | None = None  # time.monotonic() of the stop request
    finished: bool = False  # the thread has ended (nothing more will be pushed)
    on_end: Callable[[], None] | None = None  # called from the thread once it has ended
    _pending: list[Any] = field(default_factory=list)
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None

    # --- transitions ---------------------------------------------------------------------

    def start(self, run: Callable[[ReplyJob], Iterator[Event]]) -> None:
        """idle -> streaming: ``run(job)`` is iterated in a daemon thread into the buffer.

        A daemon thread, not a pool worker: a plugin stuck forever must not hold the process's
        exit. Anything ``run`` raises ends the stream as a failure, never in the caller.
        """
        self._expect(ReplyState.IDLE)
        self.phase = ReplyState.STREAMING
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._pump, args=(run,), name="reply", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """streaming -> stopping (idempotent; nothing to do in later states)."""
        self.cancel.set()
        if self.phase is ReplyState.STREAMING:
            self.phase = ReplyState.STOPPING
            self.stop_requested = time.monotonic()

    def end(self, result: GenerationResult) -> GenerationResult:
        """streaming/stopping -> stopped with ``result`` (the engine's, or ``cut_short()``)."""
        if self.phase not in (ReplyState.STREAMING, ReplyState.STOPPING):
            raise BadTransition(f"a reply cannot end while {self.phase.value}")
        self.cancel.set()
        self.phase = ReplyState.STOPPED
        self.result = result
        return result

    def mark_saved(self) -> None:
        """stopped -> saved."""
        self._expect(ReplyState.STOPPED)
        self.phase = ReplyState.SAVED

    def discard(self) -> None:
        """Any state -> discarded: the reply is forgotten (its thread is asked to stop)."""
        self.cancel.set()
        self.phase = ReplyState.DISCARDED

    # --- reading what came back ----------------------------------------------------------

    @property
    def tokens(self) -> int:
        """New tokens drained so far."""
        return len(self.events)

    @property
    def running(self) -> bool:
        return self.phase in (ReplyState.STREAMING, ReplyState.STOPPING)

    def drain(self) -> list[Any]:
        """The events (and at most one exception, last) pushed since the previous drain."""
        with self._lock:
            items, self._pending = self._pending, []
        return items

    def take(self, items: list[Any]) -> tuple[str, GenerationResult | None]:
        """Record drained items: (new visible text, the engine's result if it came).

        A failure before any token is kept in ``failure`` and ends the job as stopped with an
        empty "error" result.
        """
        from termlm.decoding.events import BeamsEvent, DoneEvent, TokenEvent

        text: list[str] = []
        for item in items:
            if isinstance(item, TokenEvent):
                self.events.append(item)
                if self.live is None:  # beam search settles its text at the end
                    text.append(item.text)
            elif isinstance(item, BeamsEvent) and item.beams:
                self.live = item
            elif isinstance(item, DoneEvent):
                return "".join(text), item.result
            elif isinstance(item, TermlmError):
                self.failure = item
                return "".join(text), self.cut_short("error", error=item.message)
            elif item is _END:
                return "".join(text), self.cut_short("error", error="ended without a result")
        return "".join(text), None

    def wait_items(self, timeout: float) -> list[Any]:
        """Like ``drain``, but wait up to ``timeout`` seconds for something to arrive."""
        with self._lock:
            if not self._pending:
                self._lock.wait(timeout)
            items, self._pending = self._pending, []
        return items

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; whether it did."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def cut_short(self, reason: str = "cancelled", error: str | None = None) -> GenerationResult:
        """A result made of what was drained so far (the engine did not end in time)."""
        from termlm.decoding.events import GenerationResult

        if self.live is not None and self.live.beams:
            best = self.live.beams[0]
            ids, text = [int(i) for i in best.token_ids], str(best.text)
            logprobs = [0.0] * len(ids)
        else:
            ids = [e.token_id for e in self.events]
            text = "".join(e.text for e in self.events)
            logprobs = [e.logprob for e in self.events]
        return GenerationResult(
            text=text,
            token_ids=ids,
            logprobs=logprobs,
            stop_reason=reason,
            seconds=time.perf_counter() - self.started if self.started else 0.0,
            state=None,
            error=error,
        )

    def settle(self, grace: float) -> GenerationResult:
        """Stop now and end with what exists: the engine's result if it comes within ``grace``.

        For quitting, deleting and switching: whatever the state, the job is ``stopped`` after
        this, with a result that holds every token that was produced.
        """
        if self.phase is ReplyState.STOPPED and self.result is not None:
            return self.result
        self.request_stop()
        deadline = time.monotonic() + grace
        while True:
            ended = self.finished  # read before draining: nothing can arrive after it is set
            _, result = self.take(self.drain())
            if result is not None:
                return self.end(result)
            if ended or time.monotonic() >= deadline:
                return self.end(self.cut_short())
            with self._lock:
                if not self._pending:
                    self._lock.wait(0.01)

    # --- the thread ----------------------------------------------------------------------

    def _pump(self, run: Callable[[ReplyJob], Iterator[Event]]) -> None:
        try:
            for event in run(self):
                self._push(event)
        except TermlmError as exc:
            self._push(exc)
        except Exception as exc:  # a broken engine must not take its caller down
            self._push(PluginError(f"generation failed: {type(exc).__name__}: {exc}"))
        finally:
            self._push(_END)
            self.finished = True
            if self.on_end is not None:
                self.on_end()

    def _push(self, item: Any) -> None:
        with self._lock:
            self._pending.append(item)
            self._lock.notify()

    def _expect(self, phase: ReplyState) -> None:
        if self.phase is not phase:
            raise BadTransition(f"expected a {phase.value} reply, this one is {self.phase.value}")


def stream(job: ReplyJob, poll: float = 0.1, batch: float = 0.0) -> Iterator[Any]:
    """Drain a started job until its thread ends: every event in order (the DoneEvent last).

    For ``termlm generate``: a KeyboardInterrupt while waiting asks the job to stop (the engine
    ends at its next step with the text so far); a second one is raised. An error the engine
    raised is raised here. ``batch`` > 0: take what arrived every ``batch`` seconds (at once when
    the thread ends) instead of waking for every event, so a fast model pays no thread switch
    per token.
    """
    while True:
        try:
            if batch > 0:
                items = job.drain()
                if not items:
                    job.wait(batch)  # returns at once when the thread ends
                    items = job.drain()
            else:
                items = job.wait_items(poll)
        except KeyboardInterrupt:
            if job.cancel.is_set():
                raise
            job.request_stop()
            continue
        for item in items:
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
