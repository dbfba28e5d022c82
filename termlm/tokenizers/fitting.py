"""Fitting a tokenizer on a corpus that arrives in pieces: memory does not grow with the corpus.

Characters and words are counted piece by piece (the counts, and the order of first appearance
that breaks their ties, are those of the whole text). BPE training reads the whole corpus up to
``BPE_SAMPLE_CHARS``; a longer corpus is sampled: every k-th piece of about 1 MiB, from the start,
so the same corpus always gives the same tokenizer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from termlm.errors import CorpusError
from termlm.tokenizers.common import PAD, UNK
from termlm.tokenizers.cuts import PIECE_CHARS, recut

BPE_SAMPLE_CHARS = 16 << 20  # BPE trains on at most this many characters (a sample beyond)

Chunks = Callable[[], Iterable[str]]  # a fresh pass over the corpus' text each call


def bpe_sample_note(total_chars: int) -> str | None:
    """What BPE fitting says when it samples a corpus of ``total_chars``; None when it does not."""
    if total_chars <= BPE_SAMPLE_CHARS:
        return None
    every = _sample_every(total_chars)
    return (
        f"BPE is trained on a sample: every {every}th piece of about 1 MiB "
        f"(about {total_chars // every / 2**20:,.0f} of {total_chars / 2**20:,.0f} MiB "
        "characters), the same sample every time"
    )


def _sample_every(total_chars: int) -> int:
    return max(1, -(-total_chars // BPE_SAMPLE_CHARS))


def char_vocabulary(chunks: Iterable[str], *, lowercase: bool, max_vocab: int | None) -> list[str]:
    """``CharTokenizer.fit``'s vocabulary (sorted characters), counted piece by piece."""
    counts = np.zeros(0, dtype=np.int64)  # by code point
    first = np.zeros(0, dtype=np.int64)  # offset of first appearance, by code point
    offset = 0
    for piece in recut(chunks, "char"):
        text = piece.lower() if lowercase else piece
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        if not len(points):
            continue
        here = np.bincount(points)
        if len(here) > len(counts):
            counts = np.concatenate([counts, np.zeros(len(here) - len(counts), np.int64)])
            first = np.concatenate([first, np.full(len(here) - len(first), -1, np.int64)])
        new = np.flatnonzero((here > 0) & (counts[: len(here)] == 0))
        if len(new):
            present, index = np.unique(points, return_index=True)
            first[new] = offset + index[np.searchsorted(present, new)]
        counts[: len(here)] += here
        offset += len(points)
    seen = np.flatnonzero(counts)
    if max_vocab is not None and len(seen) > max_vocab - 2:
        # Counter.most_common: by count, ties in order of first appearance
        order = seen[np.lexsort((first[seen], -counts[seen]))]
        seen = order[: max_vocab - 2]
    return [PAD, UNK, *sorted(chr(int(c)) for c in seen)]


def word_vocabulary(
    chunks: Iterable[str], pattern_findall: Callable[[str], list[str]], *, lowercase: bool
) -> list[str]:
    """Words by descending count, ties by first appearance (as ``WordTokenizer.fit``)."""
    counts: Counter[str] = Counter()
    for piece in recut(chunks, "word"):
        counts.update(pattern_findall(piece.lower() if lowercase else piece))
    if not counts:
        raise CorpusError(
            "the corpus has no words once punctuation is removed",
            "use --level char or bpe, or --punctuation keep",
        )
    return [word for word, _ in counts.most_common()]


def bpe_pieces(chunks: Iterable[str], total_chars: int) -> Iterator[str]:
    """The text BPE trains on: all of it up to BPE_SAMPLE_CHARS, else every k-th piece."""
    every = _sample_every(total_chars)
    for index, piece in enumerate(recut(chunks, "bpe", PIECE_CHARS)):
        if index % every == 0:
            yield piece


def require_some_text(chunks: Iterable[str]) -> None:
    """CorpusError unless some piece holds more than white space."""
    for piece in chunks:
        if piece.strip():
            return
    raise CorpusError(
        "the corpus has no text (it is empty or only whitespace)",
        "point termlm at a file with some text in it",
    )
