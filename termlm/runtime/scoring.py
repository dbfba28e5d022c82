"""Loss of a model on a text, in numpy: what `termlm eval` reports.

Cut exactly as the trainer cuts its validation text (termlm/runtime/evaluation.py), so a run's
``val_loss`` and ``termlm eval`` on the same split agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from termlm.runtime.evaluation import iter_eval_chunks, iter_window_batches
from termlm.runtime.types import StepModel

LN2 = math.log(2.0)


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean negative log-likelihood, nats per predicted token
    tokens: int  # predicted tokens
    chars: int  # characters of the evaluated text

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bpc(self) -> float:
        """Bits per character: comparable across tokenizers."""
        return self.loss * self.tokens / max(self.chars, 1) / LN2

    def to_json(self) -> dict[str, float | int]:
        return {
            "loss": self.loss,
            "ppl": self.ppl,
            "bpc": self.bpc,
            "tokens": self.tokens,
            "chars": self.chars,
        }


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log p(target) for each position: logits [..., V], targets [...] -> [...] float64."""
    x = logits.astype(np.float64)
    top = x.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(x - top).sum(axis=-1)) + top[..., 0]
    picked = np.take_along_axis(x, targets[..., None], axis=-1)[..., 0]
    return log_z - picked


def _batches(
    model: StepModel, ids: np.ndarray, batch: int, pad_id: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs [B, T], targets [B, T'] ) batches, T' = T (stateful) or 1 (window), made as they
    are read (``ids`` may be a memory map of a large token file)."""
    if not model.stateful:
        yield from iter_window_batches(ids, model.context, pad_id, batch)
        return
    # every chunk is `context` long but the last: batches of equal lengths, in order
    group: list[tuple[np.ndarray, np.ndarray]] = []
    for x, y in iter_eval_chunks(ids, model.context):
        if group and len(x) != len(group[0][0]):
            yield _stack(group)
            group = []
        group.append((x, y))
        if len(group) == batch:
            yield _stack(group)
            group = []
    if group:
        yield _stack(group)


def _stack(group: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    inputs = np.stack([x for x, _ in group]).astype(np.int64)
    return inputs, np.stack([y for _, y in group]).astype(np.int64)


def evaluate_ids(
    model: StepModel,
    ids: np.ndarray | Sequence[int],
    *,
    chars: int,
    batch: int = 16,
    pad_id: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Mean loss over every predictable token of `ids`; `progress(done, total)` per batch."""
    array = ids if isinstance(ids, np.ndarray) else np.asarray(ids, dtype=np.int64)
    batches = _batches(model, array, max(1, batch), pad_id)
    total_tokens = max(len(array) - 1, 0)  # every token but the first is predicted once
    nll_sum, done = 0.0, 0
    for inputs, targets in batches:
        state = model.initial_state(inputs.shape[0])
        logits = model.step(inputs, state).logits  # [B, T, V] or [B, 1, V]
        logits = logits[:, -targets.shape[1] :]
        nll_sum += float(token_nll(logits, targets).sum())
        done += int(targets.size)
        if progress is not None:
            progress(done, total_tokens)
    return EvalResult(loss=nll_sum / max(done, 1), tokens=done, chars=chars)
