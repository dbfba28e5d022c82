"""Well-formed UTF-8 for byte-level tokens: a reader's state, and the tokens that may come next.

A byte-level BPE token may hold part of a character. ``Utf8Mask`` says, from the bytes generated
so far, which tokens can continue them as well-formed UTF-8 (the Unicode standard's table 3-7),
so a sampler never produces U+FFFD. Used by the ``valid-utf8`` processor and by training's
samples. Standard library and numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

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


class Utf8Mask:
    """The tokens allowed after some bytes, for one vocabulary of byte strings (cached by state)."""

    def __init__(self, pieces: Sequence[bytes], eos_id: int | None = None) -> None:
        self.pieces = list(pieces)  # [V] the bytes of each token (b"" for specials)
        self.eos_id = eos_id
        self._masks: dict[Utf8State, np.ndarray] = {}

    @classmethod
    def for_tokenizer(cls, tokenizer: object, vocab_size: int) -> Utf8Mask | None:
        """A mask for a byte-level tokenizer (one with ``token_bytes``), else None."""
        get: Callable[[int], bytes] | None = getattr(tokenizer, "token_bytes", None)
        if getattr(tokenizer, "kind", None) != "bpe" or not callable(get):
            return None
        eos = getattr(tokenizer, "eos_id", None)
        return cls(
            [bytes(get(i)) for i in range(vocab_size)], eos if isinstance(eos, int) else None
        )

    def allowed(self, state: Utf8State) -> np.ndarray:
        """[V] bool: the tokens that keep the text well-formed after a reader in `state`."""
        mask = self._masks.get(state)
        if mask is None:
            mask = np.array(
                [advance(state, piece) is not None for piece in self.pieces], dtype=bool
            )
            if state[0] > 0:  # a character is unfinished: nothing may end the text here
                mask[[i for i, piece in enumerate(self.pieces) if not piece]] = False
                if self.eos_id is not None and 0 <= self.eos_id < len(self.pieces):
                    mask[self.eos_id] = False
            self._masks[state] = mask
        return mask

    def after(self, ids: Sequence[int]) -> np.ndarray:
        """[V] bool: the tokens allowed after the token ids `ids` (valid text so far)."""
        return self.allowed(state_after(self.tail(ids)))

    def unfinished(self, ids: Sequence[int]) -> bool:
        """Whether the bytes of `ids` end inside a character."""
        return state_after(self.tail(ids)) != START

    def tail(self, ids: Sequence[int], size: int = 4) -> bytes:
        """The last `size` or more bytes of `ids`."""
        parts: list[bytes] = []
        count = 0
        for token in reversed(ids):
            if 0 <= token < len(self.pieces):
                parts.append(self.pieces[token])
                count += len(self.pieces[token])
            if count >= size:
                break
        return b"".join(reversed(parts))
