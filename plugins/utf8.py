"""Keep byte-level models to valid UTF-8.

A byte-level BPE token may hold part of a character (the first two bytes of a three-byte Chinese
character, say). Sampling can then follow it with a token that does not continue the character,
and the reply shows U+FFFD. This processor bans, at every step, each token whose bytes cannot
continue the bytes so far as well-formed UTF-8, and the end token while a character is
unfinished. It is on by default and does nothing for tokenizers whose tokens are whole
characters or words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from termlm.decoding import OptionSpec, StepInfo, hookimpl
from termlm.decoding.utf8 import Utf8Mask


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
        self._mask: tuple[int, Utf8Mask | None] | None = None  # (id of the tokenizer, its mask)

    def _for(self, info: StepInfo) -> Utf8Mask | None:
        if self._mask is None or self._mask[0] != id(info.tokenizer):
            self._mask = (
                id(info.tokenizer),
                Utf8Mask.for_tokenizer(info.tokenizer, info.vocab_size),
            )
        return self._mask[1]

    def start(self, history: np.ndarray, info: StepInfo) -> _Utf8Rows | None:
        """The fast path: each row keeps only the last tokens that decide what may follow.

        None for a tokenizer whose tokens are whole characters: nothing to do at all."""
        mask = self._for(info)
        if mask is None:
            return None
        rows = [_Utf8Tail(mask, row) for row in history.tolist()]
        return _Utf8Rows(mask, rows)

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        out = logits.copy()
        mask = self._for(info)
        if mask is None:
            return out
        for row in range(history.shape[0]):
            allowed = mask.after(history[row].tolist())[: out.shape[1]]
            out[row, : allowed.shape[0]][~allowed] = -np.inf
        return out


class _Utf8Tail:
    """A row's last token ids, just enough of them for ``Utf8Mask.tail`` (4 bytes or more)."""

    __slots__ = ("ids", "mask")

    def __init__(self, mask: Utf8Mask | None, ids: list[int]) -> None:
        self.mask = mask
        self.ids: list[int] = []
        for token in ids:
            self.push(token)

    def push(self, token: int) -> None:
        self.ids.append(token)
        if self.mask is None:
            self.ids = []
            return
        pieces = self.mask.pieces
        size = [len(pieces[t]) if 0 <= t < len(pieces) else 0 for t in self.ids]
        while len(self.ids) > 1 and sum(size[1:]) >= 4:  # the first no longer matters
            self.ids.pop(0)
            size.pop(0)

    def fork(self) -> _Utf8Tail:
        out = _Utf8Tail(self.mask, [])
        out.ids = list(self.ids)
        return out


class _Utf8Rows:
    def __init__(self, mask: Utf8Mask | None, rows: list[_Utf8Tail]) -> None:
        self.mask = mask
        self.rows = rows

    def push(self, tokens: np.ndarray) -> None:
        for row, token in zip(self.rows, tokens.tolist(), strict=True):
            row.push(token)

    def select(self, index: np.ndarray) -> _Utf8Rows:
        return _Utf8Rows(self.mask, [self.rows[i].fork() for i in index.tolist()])

    def process(self, logits: np.ndarray) -> np.ndarray:
        out = logits.copy()
        if self.mask is None:
            return out
        for i, row in enumerate(self.rows):
            allowed = self.mask.after(row.ids)[: out.shape[1]]
            out[i, : allowed.shape[0]][~allowed] = -np.inf
        return out


@hookimpl
def register_plugins(register: Callable[[type[Any]], None]) -> None:
    register(ValidUtf8)
