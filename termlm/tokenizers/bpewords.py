"""Fast byte-level BPE encoding of long texts: each distinct word is encoded once.

The byte-level pre-tokenizer splits text by GPT-2's rule and BPE merges within each piece alone.
No piece holds a white-space character after another character, so the text may be cut before
every white space that follows another character: the words cut so (white space and what follows
it up to the next white space: " speak.") get the same ids alone as in the whole text (and
lowercasing, one character at a time, is the same too). Natural text has few distinct words, and
remembering their ids skips most of the work. The ids are exactly those of encoding the whole
text at once.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np

# White space as the pre-tokenizer's regex sees it (Unicode White_Space; not Python's \s, which
# also takes the separators \x1c-\x1f)
_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WORD_RE = re.compile(f"[{_SPACE}]*[^{_SPACE}]+|[{_SPACE}]+")
MAX_WORDS = 1 << 18  # the words remembered are forgotten when there are more (about 40 MB)


def can_cache(spec: dict[str, Any]) -> bool:
    """Whether a tokenizer described by ``spec`` (its ``tokenizers`` JSON) splits as GPT-2 does:
    a ByteLevel pre-tokenizer with its regex, no normalizer other than Lowercase."""
    pre = spec.get("pre_tokenizer")
    normalizer = spec.get("normalizer")
    return (
        isinstance(pre, dict)
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True) is True
        and pre.get("add_prefix_space") is False
        and normalizer in (None, {"type": "Lowercase"})
    )


class WordCache:
    """Ids of long texts through ``hf`` (a ``tokenizers.Tokenizer``), each word encoded once."""

    def __init__(self, hf: Any) -> None:
        self._hf = hf
        self._clear()

    def _clear(self) -> None:
        self._index: dict[str, int] = {}  # word -> its row in the tables below
        self._starts = np.zeros(1024, dtype=np.int64)  # where its ids start in _flat
        self._lengths = np.zeros(1024, dtype=np.int64)
        self._flat = np.zeros(4096, dtype=np.int64)
        self._used = 0

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text`` as an int64 array, as ``hf.encode(text).ids`` gives them."""
        words = _WORD_RE.findall(text)
        index = self._index
        try:
            rows = np.fromiter(map(index.__getitem__, words), dtype=np.int64, count=len(words))
        except KeyError:
            missing = set(words).difference(index)
            if len(index) + len(missing) > MAX_WORDS:
                self._clear()
                missing = set(words)
            self._learn(list(missing))
            rows = np.fromiter(
                map(self._index.__getitem__, words), dtype=np.int64, count=len(words)
            )
        lengths = self._lengths[rows]
        ends = np.cumsum(lengths)
        # the k-th id of word i sits at _flat[starts[i] + k]; it goes to ends[i] - lengths[i] + k
        where = np.repeat(self._starts[rows] - (ends - lengths), lengths)
        where += np.arange(len(where))
        return self._flat[where]

    def _learn(self, words: list[str]) -> None:
        encoded = [tuple(e.ids) for e in self._hf.encode_batch(words)]
        ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64)
        first = len(self._index)
        self._starts = _room(self._starts, first + len(words))
        self._lengths = _room(self._lengths, first + len(words))
        self._flat = _room(self._flat, self._used + len(ids))
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        self._lengths[first : first + len(words)] = lengths
        self._starts[first : first + len(words)] = self._used + np.cumsum(lengths) - lengths
        self._flat[self._used : self._used + len(ids)] = ids
        self._used += len(ids)
        self._index.update(zip(words, range(first, first + len(words)), strict=True))


def _room(array: np.ndarray, size: int) -> np.ndarray:
    """``array``, grown (doubling) to hold at least ``size`` values."""
    if size <= len(array):
        return array
    grown = np.zeros(max(size, 2 * len(array)), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
