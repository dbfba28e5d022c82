"""Word-level tokenizer.

The default follows the Keras ``Tokenizer`` of the original tutorial: lowercase, drop the Keras
filter characters (apostrophes stay, so "'tis" is one word), split on whitespace. With
``punctuation="keep"`` every filter character becomes a token of its own and each newline a
``"\\n"`` token, and ``decode`` puts the text back together the way people write it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from termlm.errors import ConfigError, CorpusError, TokenizerError
from termlm.tokenizers.common import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    check_ids,
    check_version,
    eos_from_json,
    get_field,
    optional_field,
    require_text,
    short,
    vocab_list,
)

# Keras' default ``filters`` (the characters removed before splitting), whitespace excluded.
PUNCTUATION = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'
MODES = ("strip", "keep")
NEWLINE = "\n"

_P = re.escape(PUNCTUATION)
_STRIP_RE = re.compile(rf"[^\s{_P}]+")  # a word: a run of anything but whitespace and filters
_KEEP_RE = re.compile(rf"[^\s{_P}]+|[{_P}]|\n")  # words, single marks, newlines

# How ``decode`` spaces tokens in "keep" mode.
_NO_SPACE_BEFORE = frozenset(",.;:!?)]}%")
_NO_SPACE_AFTER = frozenset("([{$#")
_TIGHT = frozenset("-/_@^~\\")  # joined on both sides: well-known, and/or


class WordTokenizer:
    """Words (and, in "keep" mode, punctuation marks and newlines) to ids and back."""

    kind = "word"

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        lowercase: bool = True,
        punctuation: str = "strip",
        eos_id: int | None = None,
    ) -> None:
        self.vocab: tuple[str, ...] = tuple(vocab)  # id -> token; 0 <pad>, 1 <unk>
        self.lowercase = lowercase
        self.punctuation = punctuation
        self.vocab_size = len(self.vocab)
        self.pad_id = PAD_ID
        self.unk_id: int | None = UNK_ID
        self.eos_id = eos_id
        self._ids = {token: i for i, token in enumerate(self.vocab) if i > UNK_ID}
        self._pattern = _KEEP_RE if punctuation == "keep" else _STRIP_RE

    # --- fitting ------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        text: str,
        *,
        lowercase: bool = True,
        punctuation: str = "strip",
        max_vocab: int | None = None,
    ) -> WordTokenizer:
        """Vocabulary by descending frequency, ties by first appearance; ``max_vocab`` caps it."""
        if punctuation not in MODES:
            raise ConfigError(
                f"unknown punctuation mode {punctuation!r}", f"choose one of: {', '.join(MODES)}"
            )
        text = require_text(text)
        pattern = _KEEP_RE if punctuation == "keep" else _STRIP_RE
        # counted match by match: no list of every word of a large corpus in memory
        source = text.lower() if lowercase else text
        counts = Counter(match.group() for match in pattern.finditer(source))
        if not counts:
            raise CorpusError(
                "the corpus has no words once punctuation is removed",
                "use --level char or bpe, or --punctuation keep",
            )
        words = [word for word, _ in counts.most_common()]  # stable: ties keep first appearance
        if max_vocab is not None:
            words = words[: max_vocab - 2]
        return cls([PAD, UNK, *words], lowercase=lowercase, punctuation=punctuation)

    # --- the Tokenizer protocol ---------------------------------------------------------------

    def split(self, text: str) -> list[str]:
        """The word sequence of ``text`` (lowercased if the tokenizer lowercases)."""
        return self._pattern.findall(text.lower() if self.lowercase else text)

    def encode(self, text: str) -> list[int]:
        get = self._ids.get
        return [get(word, UNK_ID) for word in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        check_ids(ids, self.vocab_size)
        words = [self.vocab[i] for i in ids if i != PAD_ID]
        if self.punctuation == "keep":
            return join_words(words)
        return " ".join(words)

    def token_text(self, token_id: int) -> str:
        check_ids((token_id,), self.vocab_size)
        return self.vocab[token_id]

    def unknown_spans(self, text: str) -> list[tuple[int, int]]:
        spans = []
        for match in self._pattern.finditer(text):
            word = match.group()
            if (word.lower() if self.lowercase else word) not in self._ids:
                spans.append(match.span())
        return spans

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "version": 1,
            "lowercase": self.lowercase,
            "punctuation": self.punctuation,
            "eos_id": self.eos_id,
            "vocab": list(self.vocab),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WordTokenizer:
        where = "word tokenizer"
        check_version(data, where)
        lowercase = get_field(data, "lowercase", bool, where)
        punctuation = optional_field(data, "punctuation", str, where, "strip")
        if punctuation not in MODES:
            raise TokenizerError(f"{where}: unknown punctuation mode {short(punctuation)}")
        vocab = vocab_list(data, where)
        pattern = _KEEP_RE if punctuation == "keep" else _STRIP_RE
        for token in vocab[UNK_ID + 1 :]:
            if pattern.fullmatch(token) is None:
                raise TokenizerError(
                    f"{where}: {short(token)} cannot be a word in {punctuation!r} mode"
                )
        return cls(
            vocab,
            lowercase=lowercase,
            punctuation=punctuation,
            eos_id=eos_from_json(data, len(vocab), where),
        )


def join_words(tokens: Sequence[str]) -> str:
    """Tokens of "keep" mode back to text: no space before closing marks, after opening ones,
    around hyphens and slashes, or at line starts; double quotes alternate opening and closing."""
    parts: list[str] = []
    previous: str | None = None
    quote_open = False
    for token in tokens:
        if token == NEWLINE:
            parts.append(NEWLINE)
            previous = token
            continue
        space = previous is not None and previous != NEWLINE
        if token in _NO_SPACE_BEFORE or token in _TIGHT:
            space = False
        if previous is not None and (previous in _NO_SPACE_AFTER or previous in _TIGHT):
            space = False
        if token == '"':
            if quote_open:
                space = False  # a closing quote hugs the word before it
            quote_open = not quote_open
        elif previous == '"' and quote_open:
            space = False  # the word after an opening quote hugs it
        if space:
            parts.append(" ")
        parts.append(token)
        previous = token
    return "".join(parts)
