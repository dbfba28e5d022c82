"""The logits processors in order, as one function, and its fast per-session form.

``ProcessorChain(logits, history)`` is the reference: every processor reads the whole history.
``session_scores(session)`` is what the loop uses: processors that offer ``start`` keep trackers
on the session (updated as it reads tokens, forked with its rows), the others get the history;
the order of the processors is kept either way, so both give the same scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from termlm.decoding.contracts import StepInfo

if TYPE_CHECKING:
    from termlm.decoding.session import Session

_NEG_INF = np.float32(-np.inf)


class ProcessorFailed(RuntimeError):
    """A logits processor raised or returned something unusable."""


class ProcessorChain:
    """The processors in order, as one function (logits[B,V] or [V], history[B,T] or [T]).

    NaN scores (from the model or a processor) count as banned (-inf). ``exhausted`` tells
    whether the latest call left no allowed token in any row. ``session_scores(session)`` is
    the fast way (see the module doc); a tracker ``start`` returned as None (nothing to do for
    this model) is left out of the session's steps.
    """

    def __init__(
        self, processors: Sequence[Any], info: StepInfo, never: Sequence[int] = ()
    ) -> None:
        self.processors = [p for p in processors if getattr(p, "active", True)]
        self.info = info
        self.never = np.asarray(sorted(set(never)), dtype=np.int64)  # ids never to emit
        self._masks = bool(self.never.size) and self.never.size < info.vocab_size
        self._never_add = np.zeros(info.vocab_size, dtype=np.float32)  # [V]: -inf where never
        self._never_add[self.never[self.never < info.vocab_size]] = _NEG_INF
        self._bans = tuple(np.flatnonzero(self._never_add).tolist()) if self._masks else ()
        self._n_fast = sum(1 for p in self.processors if _fast(p))
        # After ``attach``: per processor, the index of its tracker (an int), None (its tracker
        # has nothing to do), or -1 (it has no tracker: it reads the history).
        self._slots: list[int | None] | None = None
        self._n_trackers = -1
        self._idle = not self.processors  # True: no processor has anything to do (see attach)
        self.exhausted = False

    def __call__(self, logits: np.ndarray, history: np.ndarray) -> np.ndarray:
        flat = logits.ndim == 1
        scores = np.asarray(logits, dtype=np.float32)
        scores = scores[None, :] if flat else scores  # [B, V]
        hist = np.asarray(history, dtype=np.int64)
        hist = hist.reshape(scores.shape[0], -1) if hist.ndim == 1 or flat else hist  # [B, T]
        if self.never.size and self.never.size < scores.shape[-1]:
            scores = scores.copy()
            scores[:, self.never[self.never < scores.shape[-1]]] = -np.inf
        for proc in self.processors:
            scores = _checked(proc, lambda s, p=proc: p.process(s, hist, self.info), scores)
        scores = self._settle(scores)
        return scores[0] if flat else scores

    def attach(self, session: Session) -> None:
        """Start the trackers of the processors that offer them, on ``session``'s rows."""
        fast = [p for p in self.processors if _fast(p)]
        history = session.history(keep=len(fast) < len(self.processors)) if fast else None
        trackers: list[Any] = []
        slots: list[int | None] = []
        for proc in self.processors:
            if not _fast(proc):
                slots.append(-1)
                continue
            try:
                tracker = proc.start(history, self.info)
            except Exception as exc:
                raise ProcessorFailed(f"processor {proc.name!r} failed: {exc}") from exc
            if tracker is None:
                slots.append(None)
            else:
                slots.append(len(trackers))
                trackers.append(tracker)
        session.trackers = trackers
        self._slots, self._n_trackers = slots, len(trackers)
        self._idle = all(slot is None for slot in slots)  # nothing to do at any step

    def logit_bans(self, session: Session) -> tuple[int, ...] | None:
        """The ids ``session_scores(session)`` bans when banning them is all it does (no
        processor has anything to do): the scores are then the session's logits with these ids,
        and any NaN, at -inf (``exhausted`` is not updated without a call). None otherwise."""
        if (
            not self._idle
            or self._slots is None
            or session.logits.ndim != 2
            or session.logits.shape[1] != self.info.vocab_size
            or len(session.trackers) != self._n_trackers
        ):
            return None
        return self._bans

    def session_scores(self, session: Session) -> np.ndarray:
        """The processed next-token scores of every row of ``session``: [B, V] float32."""
        scores = session.logits  # [B, V] float32
        slots = self._slots
        if (
            slots is None
            or scores.ndim != 2
            or scores.shape[1] != self.info.vocab_size
            or len(session.trackers) != self._n_trackers  # a session the chain did not start
        ):
            return self(scores, session.history())
        if self._masks:  # a new array: x + 0 is x, x + -inf is -inf (NaN, as from +inf, is
            scores = scores + self._never_add  # banned by ``_settle`` as the reference's)
        if self._idle:
            if scores.size:  # ``_settle`` inline: the common case, one call per token
                peak = scores.item(int(scores.argmax()))
                if peak == peak:  # no NaN
                    self.exhausted = not peak > -math.inf
                    return scores
            return self._settle(scores)
        trackers = session.trackers
        history: np.ndarray | None = None
        for proc, slot in zip(self.processors, slots, strict=True):
            if slot is None:
                continue
            if slot >= 0:
                scores = _checked(proc, trackers[slot].process, scores)
                continue
            if history is None:
                history = session.history()
            hist = history
            scores = _checked(proc, lambda s, p=proc, h=hist: p.process(s, h, self.info), scores)
        return self._settle(scores)

    def _settle(self, scores: np.ndarray) -> np.ndarray:
        """NaN scores banned (-inf); ``exhausted`` set when no row has an allowed token."""
        if not scores.size:
            self.exhausted = True
            return scores
        # argmax finds a NaN first when there is one, else the highest score
        peak = scores.item(int(scores.argmax()))
        if peak != peak:  # NaN: only then look for them
            scores = np.where(np.isnan(scores), _NEG_INF, scores)
            peak = scores.max()
        self.exhausted = not peak > -math.inf
        return scores


def _checked(proc: Any, fn: Any, scores: np.ndarray) -> np.ndarray:
    try:
        out = fn(scores)
    except Exception as exc:
        raise ProcessorFailed(f"processor {proc.name!r} failed: {exc}") from exc
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if out.shape != scores.shape:
        raise ProcessorFailed(
            f"processor {proc.name!r} returned shape {out.shape}, expected {scores.shape}"
        )
    return out if out.dtype == np.float32 else out.astype(np.float32)


def _fast(processor: Any) -> bool:
    return callable(getattr(processor, "start", None))
