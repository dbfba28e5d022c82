"""How a validation text is cut for evaluation: shared by the trainer (torch) and `termlm eval`.

Both sides import these functions, so a run's `val_loss` and `termlm eval` agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

VAL_SPLITS = ("tail", "interleaved")
BLOCK_CHARS = 8192  # the interleaved split's blocks, cut at line ends


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """(train, validation): the validation text is the last `val_fraction` of the characters."""
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


def interleave_every(val_fraction: float) -> int:
    """The interleaved split holds out every k-th block: k for a validation fraction."""
    return max(2, round(1.0 / val_fraction))


def split_interleaved(
    text: str, val_fraction: float, block_chars: int = BLOCK_CHARS
) -> tuple[str, str]:
    """(train, validation): the text cut into blocks of about `block_chars` (at line ends where
    there is one), every k-th block held out, k = round(1 / val_fraction)."""
    every = interleave_every(val_fraction)
    train: list[str] = []
    val: list[str] = []
    start, index = 0, 0
    while start < len(text):
        end = min(len(text), start + block_chars)
        if end < len(text):
            newline = text.rfind("\n", start + block_chars // 2, end)
            if newline != -1:
                end = newline + 1
        (val if index % every == every - 1 else train).append(text[start:end])
        start, index = end, index + 1
    if not val and train:  # a text of fewer than k blocks: hold out its last block
        val.append(train.pop())
    return "".join(train), "".join(val)


def _ordinal(n: int) -> str:
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def split_validation(text: str, val_fraction: float, how: str) -> tuple[str, str]:
    """(train, validation) as training cuts them: `how` is tail or interleaved."""
    if how == "interleaved":
        return split_interleaved(text, val_fraction)
    return split_text(text, val_fraction)


def describe_split(val_fraction: float, how: str) -> str:
    """A few words naming the validation split: 'the last 10%', 'every 10th 8 KB block'."""
    if how == "interleaved":
        every = _ordinal(interleave_every(val_fraction))
        return f"every {every} block of about {BLOCK_CHARS // 1024} KB"
    return f"the last {val_fraction:.0%}"


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
    for windows, targets in iter_window_batches(ids, context, pad_id, WINDOW_BLOCK):
        yield from zip(windows, targets[:, 0].tolist(), strict=True)


WINDOW_BLOCK = 4096  # windows made at a time by iter_window_examples


def iter_window_batches(
    ids: np.ndarray, context: int, pad_id: int = 0, batch: int = 64
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``iter_window_examples`` in batches: (windows [B, context], targets [B, 1]), int64, each
    read from ``ids`` when it is made (``ids`` may be a memory map larger than memory)."""
    for first in range(1, len(ids), batch):  # the batch's targets are ids[first:last]
        last = min(first + batch, len(ids))
        low = first - context  # the first window starts there (before 0: padding)
        source = ids[max(low, 0) : last - 1].astype(np.int64)
        if low < 0:
            source = np.concatenate([np.full(-low, pad_id, dtype=np.int64), source])
        windows = np.lib.stride_tricks.sliding_window_view(source, context)
        yield np.ascontiguousarray(windows), ids[first:last].astype(np.int64)[:, None]
