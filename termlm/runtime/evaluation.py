"""How a validation text is cut for evaluation: shared by the trainer (torch) and `termlm eval`.

Both sides import these functions, so a run's `val_loss` and `termlm eval` agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """(train, validation): the validation text is the last `val_fraction` of the characters."""
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


def iter_eval_chunks(ids: np.ndarray, context: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive, non-overlapping (inputs, targets) chunks of at most `context` predictions.

    inputs = ids[i : i + n], targets = ids[i + 1 : i + n + 1], i stepping by `context`; the last,
    shorter chunk is kept when it predicts at least one token. Each chunk starts from the initial
    state, so every predicted token sees at most `context` tokens, as in training.
    """
    total = len(ids) - 1  # tokens that can be predicted
    for start in range(0, max(total, 0), context):
        n = min(context, total - start)
        yield ids[start : start + n], ids[start + 1 : start + n + 1]


def iter_window_examples(
    ids: np.ndarray, context: int, pad_id: int = 0
) -> Iterator[tuple[np.ndarray, int]]:
    """For window models: every position's pre-padded window of the previous `context` tokens."""
    padded = np.concatenate([np.full(context, pad_id, dtype=np.int64), ids.astype(np.int64)])
    for target_pos in range(1, len(ids)):
        # window ends just before ids[target_pos]; in `padded`, ids[j] sits at j + context
        end = target_pos + context
        yield padded[end - context : end], int(ids[target_pos])
