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

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        out = logits.copy()
        mask = self._for(info)
        if mask is None:
            return out
        for row in range(history.shape[0]):
            allowed = mask.after(history[row].tolist())[: out.shape[1]]
            out[row, : allowed.shape[0]][~allowed] = -np.inf
        return out


@hookimpl
def register_plugins(register: Callable[[type[Any]], None]) -> None:
    register(ValidUtf8)
