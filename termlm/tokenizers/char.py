"""Character-level tokenizer: every character of the corpus, sorted; unseen characters are <unk>."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from termlm.errors import TokenizerError
from termlm.tokenizers.common import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    check_ids,
    check_version,
    eos_from_json,
    get_field,
    require_text,
    short,
    vocab_list,
)

UNKNOWN_TEXT = "\ufffd"  # what decode writes for <unk>


class CharTokenizer:
    """One id per character. ``decode(encode(s)) == s`` whenever every character of s was seen."""

    kind = "char"
    concatenative = True  # decode(ids) is the concatenation of each id's own text

    def __init__(
        self, vocab: Sequence[str], *, lowercase: bool = False, eos_id: int | None = None
    ) -> None:
        self.vocab: tuple[str, ...] = tuple(vocab)  # id -> character; 0 <pad>, 1 <unk>
        self.lowercase = lowercase
        self.vocab_size = len(self.vocab)
        self.pad_id = PAD_ID
        self.unk_id: int | None = UNK_ID
        self.eos_id = eos_id
        self._ids = {char: i for i, char in enumerate(self.vocab) if i > UNK_ID}
        self._table: np.ndarray | None = None  # code point -> id, built on first encode_array

    @classmethod
    def fit(
        cls, text: str, *, lowercase: bool = False, max_vocab: int | None = None
    ) -> CharTokenizer:
        """All characters, sorted by code point; ``max_vocab`` keeps the most frequent ones."""
        text = require_text(text)
        if lowercase:
            text = text.lower()
        if max_vocab is None or len(set(text)) <= max_vocab - 2:
            chars = set(text)
        else:
            counts = Counter(text).most_common()  # stable: ties keep first appearance
            chars = {char for char, _ in counts[: max_vocab - 2]}
        return cls([PAD, UNK, *sorted(chars)], lowercase=lowercase)

    def _normal(self, text: str) -> str:
        return text.lower() if self.lowercase else text

    def encode(self, text: str) -> list[int]:
        get = self._ids.get
        return [get(char, UNK_ID) for char in self._normal(text)]

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as an int64 array [len], vectorised for whole corpora."""
        points = np.frombuffer(self._normal(text).encode("utf-32-le", "surrogatepass"), dtype="<u4")
        table = self._lookup_table()
        top = len(table) - 1
        ids = table[np.minimum(points, top)]
        ids[points > top] = UNK_ID
        return ids

    def _lookup_table(self) -> np.ndarray:
        if self._table is None:
            points = np.array([ord(c) for c in self._ids], dtype=np.int64)
            table = np.full(int(points.max()) + 1, UNK_ID, dtype=np.int64)
            table[points] = list(self._ids.values())
            self._table = table
        return self._table

    def decode(self, ids: Sequence[int]) -> str:
        check_ids(ids, self.vocab_size)
        vocab = self.vocab
        return "".join(vocab[i] if i > UNK_ID else UNKNOWN_TEXT for i in ids if i != PAD_ID)

    def token_text(self, token_id: int) -> str:
        check_ids((token_id,), self.vocab_size)
        return self.vocab[token_id]

    def unknown_spans(self, text: str) -> list[tuple[int, int]]:
        """Runs of characters that were never seen, as (start, end) offsets into ``text``."""
        spans: list[tuple[int, int]] = []
        known = self._ids
        for index, char in enumerate(text):
            normal = char.lower() if self.lowercase else char
            if all(c in known for c in normal):
                continue
            if spans and spans[-1][1] == index:
                spans[-1] = (spans[-1][0], index + 1)
            else:
                spans.append((index, index + 1))
        return spans

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "version": 1,
            "lowercase": self.lowercase,
            "eos_id": self.eos_id,
            "vocab": list(self.vocab),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CharTokenizer:
        where = "char tokenizer"
        check_version(data, where)
        lowercase = get_field(data, "lowercase", bool, where)
        vocab = vocab_list(data, where)
        for index, char in enumerate(vocab[UNK_ID + 1 :], start=UNK_ID + 1):
            if len(char) != 1:
                raise TokenizerError(
                    f"{where}: vocabulary entry {index} must be one character, got {short(char)}"
                )
        return cls(vocab, lowercase=lowercase, eos_id=eos_from_json(data, len(vocab), where))
