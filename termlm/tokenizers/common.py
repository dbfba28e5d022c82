"""Pieces shared by the three tokenizers: special tokens, option checks, JSON field checks.

Every check on a JSON description raises ``TokenizerError`` with a message naming the field, so a
damaged model file is refused with a reason instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from termlm.errors import ConfigError, CorpusError, TokenizerError

FORMAT_VERSION = 1
PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1
MIN_VOCAB = 3  # <pad>, <unk> and at least one real token


def require_text(text: object) -> str:
    """The corpus as a string with something in it, or ``CorpusError``."""
    if not isinstance(text, str):
        raise CorpusError(f"the corpus must be text, got {type(text).__name__}")
    if not text.strip():
        raise CorpusError(
            "the corpus has no text (it is empty or only whitespace)",
            "point termlm at a file with some text in it",
        )
    return text


def check_limit(name: str, value: int | None, minimum: int) -> int | None:
    """A vocabulary limit: None, or an integer of at least ``minimum``; else ``ConfigError``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"--{name.replace('_', '-')} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(
            f"--{name.replace('_', '-')} must be at least {minimum}, got {value}",
            f"use a value of {minimum} or more",
        )
    return value


def check_ids(ids: Sequence[int], vocab_size: int) -> None:
    """Refuse ids outside [0, vocab_size) before they index anything."""
    for token_id in ids:
        if not 0 <= token_id < vocab_size:
            raise TokenizerError(
                f"token id {token_id} is outside the vocabulary (0 to {vocab_size - 1})"
            )


# --- JSON field checks -------------------------------------------------------------------------


def get_field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``data[key]``, which must exist and be of ``kind`` (bools are not ints here)."""
    if key not in data:
        raise TokenizerError(f"{where}: the key {key!r} is missing")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise TokenizerError(f"{where}: {key!r} must be {_names(kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise TokenizerError(f"{where}: {key!r} must be {_names(kinds)}, got {_type(value)}")
    return value


def optional_field(
    data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any
) -> Any:
    """Like ``field``, but a missing key or null gives ``default``."""
    if data.get(key) is None:
        return default
    return get_field(data, key, kind, where)


def check_version(data: dict[str, Any], where: str) -> None:
    version = optional_field(data, "version", int, where, FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise TokenizerError(
            f"{where}: tokenizer format version {version} is not supported (this termlm reads {FORMAT_VERSION})",
            "upgrade termlm, or export the model again with this version",
        )


def eos_from_json(data: dict[str, Any], vocab_size: int, where: str) -> int | None:
    eos = optional_field(data, "eos_id", int, where, None)
    if eos is not None and not 0 <= eos < vocab_size:
        raise TokenizerError(
            f"{where}: eos_id {eos} is outside the vocabulary (0 to {vocab_size - 1})"
        )
    return eos


def vocab_list(data: dict[str, Any], where: str) -> list[str]:
    """The ``vocab`` field: a list of distinct strings starting with <pad>, <unk>."""
    vocab = get_field(data, "vocab", list, where)
    if len(vocab) < MIN_VOCAB:
        raise TokenizerError(
            f"{where}: the vocabulary has {len(vocab)} entries, at least {MIN_VOCAB} are needed"
        )
    for index, token in enumerate(vocab):
        if not isinstance(token, str) or not token:
            raise TokenizerError(
                f"{where}: vocabulary entry {index} must be a non-empty string, got {short(token)}"
            )
    if vocab[PAD_ID] != PAD or vocab[UNK_ID] != UNK:
        raise TokenizerError(f"{where}: the vocabulary must start with {PAD!r}, {UNK!r}")
    seen: set[str] = set()
    for token in vocab:
        if token in seen:
            raise TokenizerError(
                f"{where}: the token {short(token)} appears twice in the vocabulary"
            )
        seen.add(token)
    return vocab


def short(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters so a message stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(kinds: tuple[type, ...]) -> str:
    words = {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(words.get(k, k.__name__) for k in kinds)


def _type(value: object) -> str:
    if value is None:
        return "null"
    return type(value).__name__
