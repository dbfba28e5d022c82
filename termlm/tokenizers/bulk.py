"""Encoding a whole corpus in pieces, into a compact array: memory stays near the array's size.

A corpus of 100 MB of characters becomes 200 MB of uint16 ids instead of a Python list of
100 million ints; the pieces are cut where every tokenizer would cut anyway, so the ids are
exactly those of ``tokenizer.encode(text)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from termlm.tokenizers.base import Tokenizer, encode_array
from termlm.tokenizers.cuts import _SAFE_CUT, _SPACE_CUT, PIECE_CHARS

__all__ = ["PIECE_CHARS", "cut_points", "encode_large", "ids_dtype"]


def ids_dtype(vocab_size: int) -> type[np.unsignedinteger] | type[np.signedinteger]:
    """The smallest integer type that holds every id of a vocabulary of this size."""
    return np.uint16 if vocab_size <= 1 << 16 else np.int32


def cut_points(text: str, piece_chars: int, kind: str) -> list[int]:
    """Offsets where ``text`` can be cut into pieces of about ``piece_chars`` characters."""
    cuts: list[int] = []
    start = 0
    patterns = [_SAFE_CUT] if kind == "bpe" else [_SAFE_CUT, _SPACE_CUT]
    while start + piece_chars < len(text):
        target = start + piece_chars
        found = None
        for pattern in patterns:
            match = pattern.search(text, target, target + piece_chars)
            if match is not None:
                found = match.start()
                break
        if found is None:  # nothing near: take the next safe cut anywhere further on
            match = patterns[-1].search(text, target)
            if match is None:
                break
            found = match.start()
        cuts.append(found)
        start = found
    return cuts


def encode_large(
    tokenizer: Tokenizer,
    text: str,
    *,
    piece_chars: int = PIECE_CHARS,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``tokenizer.encode(text)`` as a compact array [n] (uint16, or int32 for big vocabularies).

    ``on_progress(chars_done, total_chars)`` is called after each piece.
    """
    dtype = ids_dtype(tokenizer.vocab_size)
    bounds = [0, *cut_points(text, piece_chars, tokenizer.kind), len(text)]
    parts: list[np.ndarray] = []
    for start, end in itertools.pairwise(bounds):
        parts.append(encode_array(tokenizer, text[start:end]).astype(dtype))
        if on_progress is not None:
            on_progress(end, len(text))
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
