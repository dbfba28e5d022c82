"""The tokenizer contract, and the two ways to get one: fit it on a corpus, or read it from JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from termlm.errors import ConfigError, TokenizerError
from termlm.tokenizers import bpe, char, fitting, word
from termlm.tokenizers.common import MIN_VOCAB, PAD, UNK, check_limit, require_text, short

KINDS = ("word", "char", "bpe")


@runtime_checkable
class Tokenizer(Protocol):
    """Text to token ids and back. Pure Python and numpy: the runtime uses it without torch."""

    kind: str  # "word" | "char" | "bpe"
    vocab_size: int
    pad_id: int  # always 0: "<pad>"
    unk_id: int | None  # word and char: 1 ("<unk>"); bpe: None (byte-level, nothing unknown)
    eos_id: int | None  # None unless fitted with an end-of-text token

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the ids; pad ids are skipped."""
        ...

    def token_text(self, token_id: int) -> str:
        """Display form of one token (for alternatives lists and heat maps)."""
        ...

    def unknown_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of ``text`` that map to <unk>; [] for bpe."""
        ...

    def to_json(self) -> dict[str, Any]: ...


def fit_tokenizer(
    kind: str,
    text: str,
    *,
    lowercase: bool | None = None,
    punctuation: str | None = None,
    max_vocab: int | None = None,
    vocab_size: int | None = None,
) -> Tokenizer:
    """Build a tokenizer of ``kind`` from the corpus ``text``.

    ``lowercase``: default True for word, False for char and bpe. ``punctuation`` (word only):
    "strip" (default, as Keras) or "keep". ``max_vocab`` and ``vocab_size`` both cap the
    vocabulary size, specials included (bpe default 2000); give one, or both equal.
    Raises ``ConfigError`` for bad options and ``CorpusError`` for a corpus with no text.
    """
    return fit_tokenizer_chunks(
        kind,
        lambda: (text,),
        len(text) if isinstance(text, str) else 0,
        lowercase=lowercase,
        punctuation=punctuation,
        max_vocab=max_vocab,
        vocab_size=vocab_size,
    )


def fit_tokenizer_chunks(
    kind: str,
    chunks: Callable[[], Iterable[str]],
    total_chars: int,
    *,
    lowercase: bool | None = None,
    punctuation: str | None = None,
    max_vocab: int | None = None,
    vocab_size: int | None = None,
) -> Tokenizer:
    """``fit_tokenizer`` on a corpus read in pieces: ``chunks()`` gives a fresh pass over its
    text (of ``total_chars`` characters) each call. Memory stays bounded: counts per piece, and
    BPE trains on a reproducible sample beyond ``fitting.BPE_SAMPLE_CHARS`` characters."""
    if kind not in KINDS:
        raise ConfigError(
            f"unknown tokenizer kind {short(kind)}", f"choose one of: {', '.join(KINDS)}"
        )
    if lowercase is not None and not isinstance(lowercase, bool):
        raise ConfigError(f"lowercase must be true or false, got {short(lowercase)}")
    if max_vocab is not None and vocab_size is not None and max_vocab != vocab_size:
        raise ConfigError(
            f"two different vocabulary sizes were given ({max_vocab} and {vocab_size})",
            "give only one of --max-vocab and --vocab-size",
        )
    name = "vocab_size" if vocab_size is not None else "max_vocab"
    minimum = bpe.MIN_VOCAB if kind == "bpe" else MIN_VOCAB
    limit = check_limit(name, vocab_size if vocab_size is not None else max_vocab, minimum)
    if kind != "word" and punctuation is not None:
        raise ConfigError(
            f"--punctuation applies to word-level tokenizers, not {kind}",
            f"drop --punctuation: the {kind} tokenizer keeps every character",
        )
    for piece in chunks():
        if not isinstance(piece, str):
            require_text(piece)  # says the corpus must be text
        break
    fitting.require_some_text(chunks())
    if kind == "word":
        mode = punctuation or "strip"
        if mode not in word.MODES:
            raise ConfigError(
                f"unknown punctuation mode {mode!r}", f"choose one of: {', '.join(word.MODES)}"
            )
        low = True if lowercase is None else lowercase
        pattern = word._KEEP_RE if mode == "keep" else word._STRIP_RE
        words = fitting.word_vocabulary(chunks(), pattern.findall, lowercase=low)
        if limit is not None:
            words = words[: limit - 2]
        return word.WordTokenizer([PAD, UNK, *words], lowercase=low, punctuation=mode)
    if kind == "char":
        vocab = fitting.char_vocabulary(chunks(), lowercase=bool(lowercase), max_vocab=limit)
        return char.CharTokenizer(vocab, lowercase=bool(lowercase))
    pieces = fitting.bpe_pieces(chunks(), total_chars)
    return bpe.BpeTokenizer.fit_pieces(pieces, vocab_size=limit, lowercase=bool(lowercase))


_READERS: dict[str, Any] = {
    "word": word.WordTokenizer.from_json,
    "char": char.CharTokenizer.from_json,
    "bpe": bpe.BpeTokenizer.from_json,
}


def tokenizer_from_json(data: dict[str, Any]) -> Tokenizer:
    """The tokenizer described by ``data`` (from ``to_json``); ``TokenizerError`` if malformed."""
    if not isinstance(data, dict):
        raise TokenizerError(
            f"a tokenizer description must be a JSON object, got {type(data).__name__}"
        )
    kind = data.get("type")
    if kind is None:
        raise TokenizerError(
            "the tokenizer description has no 'type'", f"expected one of: {', '.join(KINDS)}"
        )
    if not isinstance(kind, str) or kind not in _READERS:
        raise TokenizerError(
            f"unknown tokenizer type {short(kind)}", f"expected one of: {', '.join(KINDS)}"
        )
    tokenizer: Tokenizer = _READERS[kind](data)
    return tokenizer


def encode_array(tokenizer: Tokenizer, text: str) -> np.ndarray:
    """``tokenizer.encode(text)`` as an int64 array [len], using a vectorised path if it has one."""
    fast = getattr(tokenizer, "encode_array", None)
    if fast is not None:
        return np.asarray(fast(text), dtype=np.int64)
    return np.asarray(tokenizer.encode(text), dtype=np.int64)
