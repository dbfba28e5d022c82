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
from dataclasses import dataclass, field

import numpy as np

from termlm.runtime.types import State, StepModel, StepOutput, reorder_state
from termlm.tokenizers.common import PAD_ID  # the one padding id: tokenizers, windows, training

RECENT = "_recent"
LOGITS = "_logits"


class ModelStepFailed(RuntimeError):
    """The model itself raised during a step (not a plugin)."""


@dataclass
class Session:
    """Some rows of token history over one model, with the next-token logits of each row."""

    model: StepModel
    model_state: State
    recent: np.ndarray  # [B, R] int64: last tokens read (window models: exactly context, padded)
    logits: np.ndarray  # [B, V] float32: next-token scores of every row
    prompt: np.ndarray  # [P] int64: this generation's prompt (after truncation)
    generated: np.ndarray  # [B, N] int64: tokens fed since the prompt
    last_output: StepOutput | None = field(default=None, repr=False)  # the latest model call's

    @property
    def rows(self) -> int:
        return int(self.logits.shape[0])

    @property
    def context(self) -> int:
        return int(self.model.context)

    def history(self) -> np.ndarray:
        """Prompt then generated tokens per row: [B, P + N] int64."""
        prompt = np.broadcast_to(self.prompt, (self.rows, self.prompt.shape[0]))
        return np.concatenate([prompt, self.generated], axis=1)

    def feed(self, tokens: np.ndarray | Sequence[int]) -> None:
        """Read one token per row (one model call); ``tokens``: [B]."""
        column = np.asarray(tokens, dtype=np.int64).reshape(self.rows, 1)
        self._read(column)
        self.generated = np.concatenate([self.generated, column], axis=1)

    def extend(self, tokens: np.ndarray) -> None:
        """Read several tokens per row in one model call; ``tokens``: [B, T]."""
        block = np.asarray(tokens, dtype=np.int64).reshape(self.rows, -1)
        if block.shape[1]:
            self._read(block)
            self.generated = np.concatenate([self.generated, block], axis=1)

    def select(self, index: np.ndarray | Sequence[int]) -> Session:
        """A new session made of the given rows (repeats allowed): beams forking and dying."""
        idx = np.asarray(index, dtype=np.int64)
        axes = self.model.state_batch_axes()
        return Session(
            model=self.model,
            model_state=reorder_state(self.model_state, axes, idx) if self.model_state else {},
            recent=self.recent[idx],
            logits=self.logits[idx],
            prompt=self.prompt,
            generated=self.generated[idx],
        )

    def state(self, row: int = 0) -> State:
        """The state of one row, batch 1, ready to continue from (see the module doc)."""
        one = self.select([row])
        out = dict(one.model_state)
        out[RECENT] = one.recent.copy()
        out[LOGITS] = one.logits.astype(np.float32, copy=True)
        return out

    # --- the one place that knows about window models and bounded memories ------------------

    def _read(self, block: np.ndarray) -> None:
        """Advance every row by ``block`` [B, T] and refresh ``logits``."""
        context = self.context
        joined = np.concatenate([self.recent, block], axis=1)
        if not self.model.stateful:
            window = _left_pad(joined[:, -context:], context)  # [B, context]
            out = _step(self.model, window, {})
            self.recent = window
        else:
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
        generated=np.zeros((1, 0), dtype=np.int64),
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


def _left_pad(tokens: np.ndarray, width: int) -> np.ndarray:
    if tokens.shape[1] >= width:
        return tokens
    pad = np.full((tokens.shape[0], width - tokens.shape[1]), PAD_ID, dtype=np.int64)
    return np.concatenate([pad, tokens], axis=1)


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
