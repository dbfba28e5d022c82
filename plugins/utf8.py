"""Keep byte-level models to valid UTF-8.

A byte-level BPE token may hold part of a character (the first two bytes of a three-byte Chinese
character, say). Sampling can then follow it with a token that does not continue the character,
and the reply shows U+FFFD. This processor bans, at every step, each token whose bytes cannot
continue the bytes so far as well-formed UTF-8 (the Unicode standard's table 3-7), and the end
token while a character is unfinished. It is on by default and does nothing for tokenizers whose
tokens are whole characters or words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from termlm.decoding import OptionSpec, StepInfo, hookimpl

# The state of a UTF-8 reader: (continuation bytes still needed, lowest and highest next byte).
Utf8State = tuple[int, int, int]
START: Utf8State = (0, 0x80, 0xBF)


def _lead(byte: int) -> Utf8State | None:
    if byte <= 0x7F:
        return START
    if 0xC2 <= byte <= 0xDF:
        return (1, 0x80, 0xBF)
    if byte == 0xE0:
        return (2, 0xA0, 0xBF)
    if byte == 0xED:
        return (2, 0x80, 0x9F)  # no surrogates
    if 0xE1 <= byte <= 0xEF:
        return (2, 0x80, 0xBF)
    if byte == 0xF0:
        return (3, 0x90, 0xBF)
    if 0xF1 <= byte <= 0xF3:
        return (3, 0x80, 0xBF)
    if byte == 0xF4:
        return (3, 0x80, 0x8F)  # nothing above U+10FFFF
    return None  # 0x80-0xC1 and 0xF5-0xFF never start a character


def advance(state: Utf8State | None, data: bytes) -> Utf8State | None:
    """The reader's state after `data`, or None if `data` breaks well-formed UTF-8."""
    for byte in data:
        if state is None:
            return None
        need, low, high = state
        if need == 0:
            state = _lead(byte)
        elif low <= byte <= high:
            state = (need - 1, 0x80, 0xBF) if need > 1 else START
        else:
            return None
    return state


def state_after(tail: bytes) -> Utf8State:
    """The reader's state at the end of valid text whose last bytes are `tail` (up to 4 suffice):
    read from the last byte that starts a character."""
    start = next(
        (i for i in range(len(tail) - 1, -1, -1) if not 0x80 <= tail[i] <= 0xBF),
        None,
    )
    if start is None:
        return START
    state = advance(START, tail[start:])
    return state if state is not None else START


class ValidUtf8:
    name: ClassVar[str] = "valid-utf8"
    description: ClassVar[str] = (
        "Byte-level models: only tokens that continue valid UTF-8 (no U+FFFD)."
    )
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec(
            "utf8_only",
            bool,
            True,
            help="byte-level models: ban tokens that would make invalid UTF-8 (default on)",
        ),
    )

    def __init__(self, utf8_only: bool = True) -> None:
        self.active = bool(utf8_only)
        self._tokens: tuple[int, list[bytes]] | None = None  # (id of the tokenizer, bytes)
        self._masks: dict[Utf8State, np.ndarray] = {}

    def _token_bytes(self, info: StepInfo) -> list[bytes] | None:
        tokenizer = info.tokenizer
        get = getattr(tokenizer, "token_bytes", None)
        if getattr(tokenizer, "kind", None) != "bpe" or not callable(get):
            return None
        if self._tokens is None or self._tokens[0] != id(tokenizer):
            self._tokens = (id(tokenizer), [bytes(get(i)) for i in range(info.vocab_size)])
            self._masks = {}
        return self._tokens[1]

    def _allowed(self, state: Utf8State, pieces: Sequence[bytes], eos_id: int | None) -> np.ndarray:
        mask = self._masks.get(state)
        if mask is None:
            mask = np.array(
                [advance(state, piece) is not None for piece in pieces], dtype=bool
            )  # [V]
            if state[0] > 0:  # a character is unfinished: nothing may end the text here
                empty = [i for i, piece in enumerate(pieces) if not piece]
                mask[empty] = False
                if eos_id is not None and 0 <= eos_id < len(pieces):
                    mask[eos_id] = False
            self._masks[state] = mask
        return mask

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        pieces = self._token_bytes(info)
        if pieces is None:
            return logits.copy()
        out = logits.copy()
        for row in range(history.shape[0]):
            state = state_after(_tail(history[row], pieces))
            allowed = self._allowed(state, pieces, info.eos_id)[: out.shape[1]]
            out[row, : allowed.shape[0]][~allowed] = -np.inf
        return out


def _tail(row: np.ndarray, pieces: Sequence[bytes], size: int = 4) -> bytes:
    """The last `size` or more bytes of a row's tokens."""
    parts: list[bytes] = []
    count = 0
    for token in reversed(row.tolist()):
        if 0 <= token < len(pieces):
            parts.append(pieces[token])
            count += len(pieces[token])
        if count >= size:
            break
    return b"".join(reversed(parts))


@hookimpl
def register_plugins(register: Callable[[type[Any]], None]) -> None:
    register(ValidUtf8)
