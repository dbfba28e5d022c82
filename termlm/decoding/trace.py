"""What the model saw and felt at every token of a text: surprisal, entropy, attention, hidden.

Nothing here runs during generation. A view that wants to look inside a reply asks for a trace
afterwards: the reply is read again from the state its prompt was fed on, the way the generation
loop read it (the prompt in one call, then one token per call, so bounded memories are trimmed at
the same places), and the model's extra outputs are kept, compactly, for the new tokens only.

    trace = trace_tokens(model, prompt_ids, reply_ids, state=parent_state)
    trace.surprisal[i]      # -log p(reply_ids[i]), nats
    trace.attention_row(i)  # (first position, weights): what the model looked at to choose it

Scoring a pasted text is the same with no prompt and no state, read in chunks (``step_by_step``
False): one model call per chunk instead of per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from termlm.decoding.contracts import log_softmax
from termlm.decoding.session import Session, start_session
from termlm.runtime.types import State, StepModel


@dataclass
class Trace:
    """One pass over ``history[start:]``, the new tokens, after ``history[:start]``."""

    history: list[
        int
    ]  # every token id read: earlier ones (as far as the model remembers), then new
    start: int  # index in ``history`` of the first new token
    surprisal: np.ndarray  # [N] float32, nats: -log p(new token i | everything before it)
    entropy: np.ndarray  # [N] float32, nats: entropy of the distribution token i was drawn from
    top: list[list[tuple[int, float]]] = field(default_factory=list)  # [N] x k (id, prob)
    attention: list[np.ndarray | None] = field(default_factory=list)  # [N] rows, float16
    attention_from: list[int] = field(default_factory=list)  # [N]: history index of weight 0
    hidden: np.ndarray | None = None  # [N, H] float16: top-layer state after reading token i

    @property
    def new_ids(self) -> list[int]:
        return self.history[self.start :]

    def __len__(self) -> int:
        return len(self.history) - self.start

    def attention_row(self, i: int) -> tuple[int, np.ndarray] | None:
        """For new token i: (history index of the first key, weights [W]) or None if unknown."""
        if not self.attention or self.attention[i] is None:
            return None
        row = self.attention[i]
        assert row is not None
        return self.attention_from[i], row.astype(np.float32)


@dataclass
class _Collector:
    """Gathers per-token measures as the session reads."""

    top_k: int
    surprisal: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    top: list[list[tuple[int, float]]] = field(default_factory=list)
    attention: list[np.ndarray | None] = field(default_factory=list)
    attention_from: list[int] = field(default_factory=list)
    hidden: list[np.ndarray] = field(default_factory=list)

    def predict(self, logits: np.ndarray, token: int) -> None:
        """One new token, scored against the logits [V] that came before it."""
        logp = log_softmax(logits)  # [V]
        self.surprisal.append(float(-logp[token]))
        probs = np.exp(logp)
        self.entropy.append(float(-(probs * logp).sum()))
        if self.top_k:
            best = np.argsort(-logp)[: self.top_k]
            self.top.append([(int(i), float(probs[i])) for i in best])

    def look(self, attention: np.ndarray | None, position: int, history_len: int) -> None:
        """The attention row [K] computed while reading history[position]; keys end there."""
        if attention is None:
            self.attention.append(None)
            self.attention_from.append(0)
            return
        # Keys are the last K tokens read by the end of the call; this row sees up to `position`.
        visible = attention.shape[-1] - (history_len - 1 - position)
        row = attention[: max(visible, 0)]
        self.attention.append(row.astype(np.float16))
        self.attention_from.append(position + 1 - row.shape[0])


def trace_tokens(
    model: StepModel,
    prompt_ids: Sequence[int],
    new_ids: Sequence[int],
    *,
    state: State | None = None,
    step_by_step: bool = True,
    top_k: int = 5,
    chunk: int | None = None,
) -> Trace:
    """Read ``prompt_ids`` then ``new_ids`` on top of ``state`` and trace the new ones.

    ``step_by_step``: one model call per new token, exactly as generation read them (a reply).
    Otherwise new tokens go in chunks (``chunk`` tokens, by default half the context for models
    with a bounded memory, everything for plain recurrent ones): a pasted text to score.
    """
    session, _ = start_session(model, list(prompt_ids), state)
    history: list[int] = [int(t) for t in session.recent[0]] if model.stateful else []
    if not model.stateful:  # a window model: the window read, without its padding
        history = [int(t) for t in session.prompt] if len(session.prompt) else []
    start = len(history)
    keep = _Collector(top_k=top_k)
    extras = _last_extras(session)  # from reading the prompt's last token
    hidden_dim: int | None = None
    ids = [int(t) for t in new_ids]
    if not ids:
        return _finish(history, start, keep, None)

    size = 1 if step_by_step or not model.stateful else _chunk_size(model, chunk)
    pending_attention = _row(extras, "attention", -1)
    for begin in range(0, len(ids), size):
        block = ids[begin : begin + size]
        logits_before = session.logits[0]  # [V]
        # The first token of the block is predicted from what came before.
        keep.predict(logits_before, block[0])
        _look_before(keep, pending_attention, history)
        _read(session, block)
        out = session.last_output
        assert out is not None
        logits = np.asarray(out.logits[0, -len(block) :], dtype=np.float32)  # [T, V]
        attention = out.extras.get("attention")
        hidden = out.extras.get("hidden")
        history.extend(block)
        total = len(history)
        for j in range(1, len(block)):
            keep.predict(logits[j - 1], block[j])
            row = _window_row(attention, j - 1, len(block))
            keep.look(row, total - len(block) + j - 1, total)
        if hidden is not None and model.stateful:
            rows = np.asarray(hidden[0, -len(block) :], dtype=np.float16)  # [T, H]
            keep.hidden.extend(rows)
            hidden_dim = rows.shape[-1]
        pending_attention = _window_row(attention, len(block) - 1, len(block))
    hidden_all = np.stack(keep.hidden) if keep.hidden and hidden_dim else None
    return _finish(history, start, keep, hidden_all)


def _read(session: Session, block: list[int]) -> None:
    if session.model.stateful:
        session.extend(np.asarray([block], dtype=np.int64))
    else:
        for token in block:
            session.feed([token])


def _chunk_size(model: StepModel, chunk: int | None) -> int:
    if chunk is not None:
        return max(1, chunk)
    axes = getattr(model, "state_time_axes", None)
    bounded = bool(axes()) if axes is not None else False
    return max(1, int(model.context) // 2) if bounded else 256


def _last_extras(session: Session) -> dict[str, np.ndarray]:
    out = session.last_output
    return {} if out is None else dict(out.extras)


def _row(extras: dict[str, np.ndarray], name: str, t: int) -> np.ndarray | None:
    value = extras.get(name)
    if value is None or value.ndim != 3 or value.shape[1] == 0:
        return None
    return np.asarray(value[0, t], dtype=np.float32)


def _window_row(attention: np.ndarray | None, t: int, width: int) -> np.ndarray | None:
    """Row t of the last ``width`` positions of an attention output [1, T, K]."""
    if attention is None or attention.ndim != 3:
        return None
    offset = attention.shape[1] - width
    return np.asarray(attention[0, offset + t], dtype=np.float32)


def _look_before(keep: _Collector, row: np.ndarray | None, history: list[int]) -> None:
    """The row that chose the first token of a block: from the last token already read."""
    if row is None or not history:
        keep.look(None, 0, 0)
        return
    keep.look(row, len(history) - 1, len(history))


def _finish(history: list[int], start: int, keep: _Collector, hidden: np.ndarray | None) -> Trace:
    return Trace(
        history=history,
        start=start,
        surprisal=np.asarray(keep.surprisal, dtype=np.float32),
        entropy=np.asarray(keep.entropy, dtype=np.float32),
        top=keep.top,
        attention=keep.attention if any(r is not None for r in keep.attention) else [],
        attention_from=keep.attention_from,
        hidden=hidden,
    )
