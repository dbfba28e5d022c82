"""Drive any StepModel row by row, hiding the two special cases in one place.

* Window models (``model.stateful`` False) carry no state: the session keeps each row's last
  ``model.context`` tokens (pre-padded with the pad id 0) and feeds the whole window every step.
* Stateful models whose state grows in time (an attention memory, a key/value cache; found with
  ``model.state_time_axes()`` when the model has it) are kept within ``model.context``: when a
  step would go past it, the row is re-read from an empty state with its last ``context // 2``
  tokens.

The state a session hands out (``Session.state``) is the model's arrays plus two bookkeeping
arrays: ``_recent`` (int64 [1, R], the last tokens read, R <= context) and ``_logits``
(float32 [1, V], the scores of the next token). Pass it back to continue exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from termlm.runtime.types import State, StepModel, StepOutput, reorder_state
from termlm.tokenizers.common import PAD_ID  # the one padding id: tokenizers, windows, training

RECENT = "_recent"
_MAX_COLUMNS = 1 << 16  # token arrays kept for reuse, at most
LOGITS = "_logits"


class ModelStepFailed(RuntimeError):
    """The model itself raised during a step (not a plugin)."""


class _Block:
    """Tokens fed in one call, shared by every session forked after it (a tree of histories).

    ``tokens`` [B', T]: what each row of the feeding session read; ``rows`` [B']: the row of
    ``prev`` each of those rows continued (None: row i continued row i).
    """

    __slots__ = ("prev", "rows", "tokens")

    def __init__(self, tokens: np.ndarray, rows: np.ndarray | None, prev: _Block | None) -> None:
        self.tokens = tokens
        self.rows = rows
        self.prev = prev


class Session:
    """Some rows of token history over one model, with the next-token logits of each row.

    Forking rows (``select``) and feeding them cost the same whatever the length of the
    history: the tokens are kept as a tree of fed blocks, and ``generated`` (the tokens fed
    since the prompt, [B, N]) is built from it when asked, then kept up to date.
    """

    def __init__(
        self,
        model: StepModel,
        model_state: State,
        recent: np.ndarray,
        logits: np.ndarray,
        prompt: np.ndarray,
        generated: np.ndarray | None = None,
        last_output: StepOutput | None = None,
    ) -> None:
        self.model = model
        self.model_state = model_state
        self._recent = recent  # [B, R] int64 (see ``recent``), before the blocks of ``_unread``
        self._unread: list[np.ndarray] = []  # blocks read since ``_recent`` was last joined
        self._unread_width = 0
        self.logits = logits  # [B, V] float32: next-token scores of every row
        self.prompt = prompt  # [P] int64: this generation's prompt (after truncation)
        self.last_output = last_output  # the latest model call's logits and extras
        self.trackers: list[Any] = []  # per-row running state of fast processors (see loop)
        self._columns: dict[int, np.ndarray] = {}  # token -> its read-only [1, 1] array
        self._grows: bool | None = None  # a memory or cache kept within the context?
        self._axes: dict[str, int] | None = None  # the model's state batch axes, once asked
        self._last: _Block | None = None
        self._rows: np.ndarray | None = None  # row of ``_last`` each row is at (None: same)
        self._length = 0  # N
        self._cache: np.ndarray | None = None  # [B, >= N] generated, once someone asked
        if generated is not None and generated.shape[1]:
            block = np.asarray(generated, dtype=np.int64)
            self._last, self._length = _Block(block, None, None), int(block.shape[1])

    @property
    def rows(self) -> int:
        """How many rows (B) the session has."""
        return int(self.logits.shape[0])

    @property
    def recent(self) -> np.ndarray:
        """The last tokens read, [B, R] int64, R <= context (window models: context, padded).

        A fixed-state model never needs them to step: they are joined only when asked (a saved
        state, a fork), not at every token."""
        if self._unread:
            self._join_recent()
        return self._recent

    @recent.setter
    def recent(self, value: np.ndarray) -> None:
        self._recent, self._unread, self._unread_width = value, [], 0

    def _join_recent(self) -> None:
        joined = np.concatenate([self._recent, *self._unread], axis=1)
        self._recent = joined[:, -self.context :]
        self._unread, self._unread_width = [], 0

    @property
    def context(self) -> int:
        """The model's context in tokens."""
        return int(self.model.context)

    @property
    def length(self) -> int:
        """How many tokens each row has read since the prompt (N)."""
        return self._length

    @property
    def generated(self) -> np.ndarray:
        """Tokens fed since the prompt, per row: [B, N] int64 (read-only view)."""
        n = self._length
        if self._cache is None:
            self._cache = self._materialize(max(16, 2 * n))
        view = self._cache[:, :n]
        view.flags.writeable = False
        return view

    def history(self, *, keep: bool = True) -> np.ndarray:
        """Prompt then generated tokens per row: [B, P + N] int64.

        ``keep``: keep the generated tokens at hand afterwards (and copy them into every fork),
        for a reader that asks at every step; False for a one-off read."""
        prompt = np.broadcast_to(self.prompt, (self.rows, self.prompt.shape[0]))
        if keep or self._cache is not None:
            generated: np.ndarray = self.generated
        else:
            generated = self._materialize(self._length)[:, : self._length]
        return np.concatenate([prompt, generated], axis=1)

    def feed(self, tokens: np.ndarray | Sequence[int]) -> None:
        """Read one token per row (one model call); ``tokens``: [B]."""
        if type(tokens) is list and len(tokens) == 1:  # the common case: one row, one token
            token = tokens[0]
            column = self._columns.get(token) if type(token) is int else None
            if column is None:
                column = np.array([tokens], dtype=np.int64)  # [1, 1]
                if self.logits.shape[0] != 1:
                    column = column.reshape(self.rows, 1)  # (raises: the rows do not match)
                if type(token) is int and len(self._columns) < _MAX_COLUMNS:
                    column.flags.writeable = False  # shared by every block that reads it
                    self._columns[token] = column
            elif self.logits.shape[0] != 1:
                column = column.reshape(self.rows, 1)  # (raises: the rows do not match)
            if self._grows is False and not self.trackers:  # a fixed-size state, nothing to tell
                out = _step(self.model, column, self.model_state)
                self.model_state = out.state
                self._unread.append(column)
                self._unread_width += 1
                if self._unread_width >= self.model.context:
                    self._join_recent()
                self.last_output = out
                logits = out.logits
                if type(logits) is not np.ndarray or logits.dtype != np.float32:
                    logits = np.asarray(logits, dtype=np.float32)
                self.logits = logits[:, -1]  # [1, V]
                self._last, self._rows = _Block(column, self._rows, self._last), None
                self._length += 1
                if self._cache is not None:
                    self._grow_cache(column)
                return
        else:
            column = np.asarray(tokens, dtype=np.int64).reshape(self.rows, 1)
        self._read(column)
        self._grow(column)

    def extend(self, tokens: np.ndarray) -> None:
        """Read several tokens per row in one model call; ``tokens``: [B, T]."""
        block = np.asarray(tokens, dtype=np.int64).reshape(self.rows, -1)
        if block.shape[1]:
            self._read(block)
            self._grow(block)

    def select(self, index: np.ndarray | Sequence[int]) -> Session:
        """A new session made of the given rows (repeats allowed): beams forking and dying."""
        idx = np.asarray(index, dtype=np.int64)
        if self._axes is None:
            self._axes = self.model.state_batch_axes()
        axes = self._axes
        out = Session(
            model=self.model,
            model_state=reorder_state(self.model_state, axes, idx) if self.model_state else {},
            recent=self.recent[idx],  # (joins what was read since the last join)
            logits=self.logits[idx],
            prompt=self.prompt,
        )
        out._last, out._length, out._grows, out._axes, out._columns = (
            self._last,
            self._length,
            self._grows,
            axes,
            self._columns,
        )
        out._rows = idx if self._rows is None else self._rows[idx]
        if self._cache is not None:  # someone reads the history: keep it at hand
            out._cache = _with_room(self._cache[idx, : self._length], self._length)
        out.trackers = [t.select(idx) for t in self.trackers]
        return out

    def state(self, row: int = 0) -> State:
        """The state of one row, batch 1, ready to continue from (see the module doc)."""
        one = self.select([row])
        out = dict(one.model_state)
        out[RECENT] = one.recent.copy()
        out[LOGITS] = one.logits.astype(np.float32, copy=True)
        return out

    # --- the token tree -----------------------------------------------------------------------

    def _grow(self, block: np.ndarray) -> None:
        """Record ``block`` [B, T] as read by every row, and tell the trackers."""
        self._last, self._rows = _Block(block, self._rows, self._last), None
        self._length += block.shape[1]
        if self._cache is not None:
            self._grow_cache(block)
        if self.trackers:
            for j in range(block.shape[1]):
                column = block[:, j]
                for tracker in self.trackers:
                    tracker.push(column)

    def _grow_cache(self, block: np.ndarray) -> None:
        """Copy ``block`` [B, T] into the kept history (its tokens are already counted)."""
        assert self._cache is not None
        t = block.shape[1]
        n = self._length - t
        if self._cache.shape[1] < n + t:
            self._cache = _with_room(self._cache[:, :n], n + t)
        self._cache[:, n : n + t] = block

    def _materialize(self, width: int) -> np.ndarray:
        """Walk the tree back from every row: [B, width] with the first N columns filled."""
        out = np.zeros((self.rows, max(width, self._length)), dtype=np.int64)
        pieces: list[np.ndarray] = []  # newest first
        rows = self._rows  # None: row i of the block is row i here
        block = self._last
        while block is not None:
            pieces.append(block.tokens if rows is None else block.tokens[rows])
            if block.rows is not None:
                rows = block.rows if rows is None else block.rows[rows]
            block = block.prev
        if pieces:
            pieces.reverse()
            out[:, : self._length] = np.concatenate(pieces, axis=1)
        return out

    # --- the one place that knows about window models and bounded memories ------------------

    def _read(self, block: np.ndarray) -> None:
        """Advance every row by ``block`` [B, T] and refresh ``logits``."""
        context = self.context
        if not self.model.stateful:
            joined = np.concatenate([self.recent, block], axis=1)
            window = _left_pad(joined[:, -context:], context)  # [B, context]
            out = _step(self.model, window, {})
            self.recent = window
        else:
            if self._grows is None:
                self._grows = _has_time_axes(self.model)
            if not self._grows:  # fixed-size state: the recent tokens wait until asked for
                out = _step(self.model, block, self.model_state)
                self.model_state = out.state
                self._unread.append(block)
                self._unread_width += block.shape[1]
                if self._unread_width >= context:
                    self._join_recent()
            else:
                joined = np.concatenate([self.recent, block], axis=1)
                feed, state = block, self.model_state
                length = _time_length(self.model, state)
                if length is not None and length + block.shape[1] > context:
                    keep = min(max(context // 2, block.shape[1]), context, joined.shape[1])
                    feed, state = joined[:, -keep:], self.model.initial_state(self.rows)
                out = _step(self.model, feed, state)
                self.model_state = out.state
                self.recent = joined[:, -context:]
        self.last_output = out  # logits [B, T', V] and the extras of every position read
        self.logits = np.asarray(out.logits[:, -1, :], dtype=np.float32)  # [B, V]


def start_session(
    model: StepModel, prompt_ids: Sequence[int], state: State | None
) -> tuple[Session, int]:
    """A one-row session after the prompt, and how many prompt tokens were cut from the left.

    With ``state``, the prompt is read on top of it; an empty prompt then continues from the
    state's saved scores. Without ``state`` and without a prompt, generation starts after the pad
    token (window models: after an all-pad window).
    """
    context = int(model.context)
    ids = np.asarray(list(prompt_ids), dtype=np.int64)
    dropped = max(0, ids.shape[0] - context)
    ids = ids[dropped:]
    vocab = int(model.vocab_size)
    if state is None:
        model_state: State = model.initial_state(1) if model.stateful else {}
        width = context if not model.stateful else 0
        recent = np.full((1, width), PAD_ID, dtype=np.int64)
        logits = None
    else:
        model_state = {k: v for k, v in state.items() if not k.startswith("_")}
        recent = np.asarray(state.get(RECENT, np.zeros((1, 0))), dtype=np.int64).reshape(1, -1)
        saved = state.get(LOGITS)
        logits = None if saved is None else np.asarray(saved, dtype=np.float32).reshape(1, vocab)
    session = Session(
        model=model,
        model_state=model_state,
        recent=recent,
        logits=logits if logits is not None else np.zeros((1, vocab), dtype=np.float32),
        prompt=ids,
    )
    if ids.shape[0]:
        session._read(ids.reshape(1, -1))
    elif logits is None:
        if model.stateful:
            session._read(np.full((1, 1), PAD_ID, dtype=np.int64))
        else:
            out = _step(model, _left_pad(recent, context), {})
            session.logits = np.asarray(out.logits[:, -1, :], dtype=np.float32)
    return session, dropped


def _with_room(tokens: np.ndarray, width: int) -> np.ndarray:
    """``tokens`` [B, N] copied into a buffer with room to grow: [B, max(2 * width, 16)]."""
    out = np.zeros((tokens.shape[0], max(2 * width, 16)), dtype=np.int64)
    out[:, : tokens.shape[1]] = tokens
    return out


def _left_pad(tokens: np.ndarray, width: int) -> np.ndarray:
    if tokens.shape[1] >= width:
        return tokens
    pad = np.full((tokens.shape[0], width - tokens.shape[1]), PAD_ID, dtype=np.int64)
    return np.concatenate([pad, tokens], axis=1)


def _has_time_axes(model: StepModel) -> bool:
    axes_of = getattr(model, "state_time_axes", None)
    return axes_of is not None and bool(axes_of())


def _time_length(model: StepModel, state: State) -> int | None:
    axes_of = getattr(model, "state_time_axes", None)
    if axes_of is None:
        return None
    axes: dict[str, int] = axes_of()
    for name, axis in axes.items():
        if name in state:
            return int(state[name].shape[axis])
    return None


def _step(model: StepModel, tokens: np.ndarray, state: State) -> StepOutput:
    try:
        return model.step(tokens, state)
    except Exception as exc:
        raise ModelStepFailed(f"the model failed on a step: {exc}") from exc
