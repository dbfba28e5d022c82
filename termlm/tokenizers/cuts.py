"""Where a text may be cut so that each side encodes to its share of the whole's ids."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import numpy as np

PIECE_CHARS = 1 << 20  # characters encoded at a time

# A newline with printable ASCII on both sides: the byte-level BPE split, the word split and the
# character split all cut there, and lowercasing does not look across it.
_SAFE_CUT = re.compile(r"(?<=[!-~]\n)(?=[!-~])")
# For word and char tokenizers, just after any white space is also safe (for BPE it is not:
# its pre-tokenizer glues a space to the word that follows).
_SPACE_CUT = re.compile(r"(?<=\s)(?=\S)")


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """The smallest unsigned type for a token file: uint8, uint16 or uint32."""
    if vocab_size <= 1 << 8:
        return np.uint8
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


def find_cut(text: str, start: int, kind: str) -> int | None:
    """The first offset at or after ``start`` where a tokenizer of ``kind`` may cut ``text``
    (None if there is none): the ids of the two sides are the ids of the whole."""
    pattern = _SAFE_CUT if kind == "bpe" else _SPACE_CUT
    match = pattern.search(text, start)
    return None if match is None else match.start()


def recut(chunks: Iterable[str], kind: str, piece_chars: int = PIECE_CHARS) -> Iterator[str]:
    """Text arriving in arbitrary chunks, as pieces of about ``piece_chars`` cut where a tokenizer
    of ``kind`` may cut (a piece grows past that only where the text offers no cut)."""
    rest = ""
    for chunk in chunks:
        buffer = rest + chunk if rest else chunk
        pos = 0
        while len(buffer) - pos > piece_chars:
            cut = find_cut(buffer, pos + piece_chars, kind)
            if cut is None:
                break
            yield buffer[pos:cut]
            pos = cut
        rest = buffer[pos:]
    if rest:
        yield rest
