"""Fast byte-level BPE encoding of long texts: each distinct word is encoded once.

The byte-level pre-tokenizer splits text into words (GPT-2's rule) and BPE merges within each
word alone, so a word's ids do not depend on its neighbours: natural text has few distinct words,
and remembering their ids skips most of the work. On ASCII text the split is made here with
Python's ``re`` (the rule with its Unicode classes narrowed to ASCII, which is exact there);
stretches of text around any other character, cut where the split cuts anyway, go to the
tokenizer whole. The ids are exactly those of encoding the whole text at once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

# GPT-2's split on ASCII: \p{L} is [A-Za-z], \p{N} is [0-9], \s is [\t\n\v\f\r ].
_WORD_RE = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\t\n\v\f\r A-Za-z0-9]+"""
    r"""|[\t\n\v\f\r ]+(?![^\t\n\v\f\r ])|[\t\n\v\f\r ]+"""
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
# A newline with printable ASCII on both sides: the split (and lowercasing) cut there.
_SAFE_CUT = re.compile(r"(?<=[!-~]\n)(?=[!-~])")
MAX_WORDS = 1 << 19  # the memory of words is forgotten when it holds more (about 60 MB)


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


def stretches(text: str) -> Iterator[tuple[bool, str]]:
    """(is_ascii, part) in order: the parts of ``text`` around non-ASCII characters, cut where
    the split cuts anyway (a part with any non-ASCII character is not ASCII)."""
    pos = 0
    for match in _NON_ASCII.finditer(text):
        if match.start() < pos:
            continue  # inside the last non-ASCII stretch
        start = _last_cut(text, pos, match.start())
        cut = _SAFE_CUT.search(text, match.end())
        end = cut.start() if cut else len(text)
        if start > pos:
            yield True, text[pos:start]
        yield False, text[start:end]
        pos = end
    if pos < len(text):
        yield True, text[pos:]


def _last_cut(text: str, lo: int, hi: int) -> int:
    """The last place in [lo, hi] where the split cuts anyway (lo when there is none)."""
    newline = text.rfind("\n", lo, hi)
    while newline > lo:
        end = newline + 1
        if end < hi and "!" <= text[newline - 1] <= "~" and "!" <= text[end] <= "~":
            return end
        newline = text.rfind("\n", lo, newline)
    return lo


class WordCache:
    """Ids of long texts through ``hf`` (a ``tokenizers.Tokenizer``), each word encoded once."""

    def __init__(self, hf: Any, *, lowercase: bool) -> None:
        self._hf = hf
        self._lowercase = lowercase
        self._ids: dict[str, tuple[int, ...]] = {}

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text`` as an int64 array, as ``hf.encode(text).ids`` gives them."""
        parts = [
            self._ascii(part) if is_ascii else np.asarray(self._hf.encode(part).ids, np.int64)
            for is_ascii, part in stretches(text)
        ]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _ascii(self, text: str) -> np.ndarray:
        if self._lowercase:
            text = text.lower()  # ASCII: the same as the tokenizer's Lowercase
        words = _WORD_RE.findall(text)
        known = self._ids
        found: list[tuple[int, ...] | None] = list(map(known.get, words))
        if None in found:
            missing = list(set(words).difference(known))
            if len(known) + len(missing) > MAX_WORDS:
                known.clear()
                missing = list(set(words))
            for word, encoding in zip(missing, self._hf.encode_batch(missing), strict=True):
                known[word] = tuple(encoding.ids)
            found = list(map(known.__getitem__, words))
        every: list[tuple[int, ...]] = found  # type: ignore[assignment]  # no None left
        return np.fromiter(itertools.chain.from_iterable(every), dtype=np.int64)
