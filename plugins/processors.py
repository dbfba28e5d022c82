"""Built-in logits processors. Each is off at its default, so it costs nothing until set.

All work on scores [B, V] float32 and the token history [B, T] (prompt then reply), return a new
array and never produce NaN (tokens at -inf stay at -inf).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from termlm.decoding import OptionSpec, StepInfo, hookimpl


def _counts(history: np.ndarray, vocab: int) -> np.ndarray:
    """How often each token occurs in each row: [B, V] float32."""
    rows = history.shape[0]
    counts = np.zeros((rows, vocab), dtype=np.float32)
    if history.shape[1]:
        valid = np.clip(history, 0, vocab - 1)
        np.add.at(counts, (np.repeat(np.arange(rows), history.shape[1]), valid.reshape(-1)), 1.0)
    return counts


class RepetitionPenalty:
    """CTRL-style: scores of tokens already seen are divided by the penalty (multiplied if < 0)."""

    name: ClassVar[str] = "repetition-penalty"
    description: ClassVar[str] = (
        "Make tokens already in the text less likely (CTRL-style, 1 = off)."
    )
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec(
            "repetition_penalty",
            float,
            1.0,
            min=0.0,
            max=10.0,
            min_inclusive=False,
            help="> 1 discourages repeating tokens; 1 is off",
        ),
    )

    def __init__(self, repetition_penalty: float = 1.0) -> None:
        self.penalty = float(repetition_penalty)
        self.active = self.penalty != 1.0

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        seen = _counts(history, logits.shape[1]) > 0  # [B, V]
        penalised = np.where(logits > 0, logits / self.penalty, logits * self.penalty)
        return np.where(seen, penalised, logits).astype(np.float32)


class FrequencyPresencePenalty:
    """OpenAI-style: subtract frequency * count and presence * (count > 0) from each score."""

    name: ClassVar[str] = "frequency-presence"
    description: ClassVar[str] = (
        "Subtract count-based (frequency) and seen-once (presence) penalties."
    )
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec(
            "frequency_penalty", float, 0.0, min=-2.0, max=2.0, help="per occurrence (0: off)"
        ),
        OptionSpec("presence_penalty", float, 0.0, min=-2.0, max=2.0, help="once seen (0: off)"),
    )

    def __init__(self, frequency_penalty: float = 0.0, presence_penalty: float = 0.0) -> None:
        self.frequency = float(frequency_penalty)
        self.presence = float(presence_penalty)
        self.active = self.frequency != 0.0 or self.presence != 0.0

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        generated = history[:, info.prompt_length :]  # only the reply counts, as in the OpenAI API
        counts = _counts(generated, logits.shape[1])  # [B, V]
        penalty = self.frequency * counts + self.presence * (counts > 0)
        return (logits - penalty).astype(np.float32)


class NoRepeatNgram:
    """Ban any token that would repeat an n-gram already in the row's history."""

    name: ClassVar[str] = "no-repeat-ngram"
    description: ClassVar[str] = "Never repeat an n-gram of the given size (0 = off)."
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("no_repeat_ngram_size", int, 0, min=0, max=64, help="n-gram size (0: off)"),
    )

    def __init__(self, no_repeat_ngram_size: int = 0) -> None:
        self.n = int(no_repeat_ngram_size)
        self.active = self.n > 0

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        n = self.n
        out = logits.copy()
        if history.shape[1] < n:
            return out
        for row in range(history.shape[0]):
            seq = history[row].tolist()
            prefix = tuple(seq[len(seq) - n + 1 :]) if n > 1 else ()
            banned = [
                seq[i + n - 1]
                for i in range(len(seq) - n + 1)
                if tuple(seq[i : i + n - 1]) == prefix
            ]
            banned = [t for t in banned if 0 <= t < out.shape[1]]
            out[row, banned] = -np.inf
        return out


class BannedWords:
    """Ban the tokens of the listed words (comma separated)."""

    name: ClassVar[str] = "banned-words"
    description: ClassVar[str] = "Never produce the tokens of these comma-separated words."
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("banned_words", str, "", help="comma-separated words whose tokens are banned"),
    )

    def __init__(self, banned_words: str = "") -> None:
        self.words = [w.strip() for w in banned_words.split(",") if w.strip()]
        self.active = bool(self.words)
        self._ids: np.ndarray | None = None

    def banned_ids(self, info: StepInfo) -> np.ndarray:
        if self._ids is None:
            ids: set[int] = set()
            for word in self.words:
                tokens = info.tokenizer.encode(word)
                unk = getattr(info.tokenizer, "unk_id", None)
                ids.update(t for t in tokens if t != unk and 0 <= t < info.vocab_size)
            self._ids = np.array(sorted(ids), dtype=np.int64)
        return self._ids

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        out = logits.copy()
        out[:, self.banned_ids(info)] = -np.inf
        return out


class MinNewTokens:
    """Ban the end-of-text token until the reply has this many tokens."""

    name: ClassVar[str] = "min-length"
    description: ClassVar[str] = "Ban the eos token until min_new_tokens have been generated."
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("min_new_tokens", int, 0, min=0, help="the shortest reply (0: off)"),
    )

    def __init__(self, min_new_tokens: int = 0) -> None:
        self.min_new_tokens = int(min_new_tokens)
        self.active = self.min_new_tokens > 0

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        out = logits.copy()
        generated = history.shape[1] - info.prompt_length
        if info.eos_id is not None and generated < self.min_new_tokens:
            out[:, info.eos_id] = -np.inf
        return out


@hookimpl
def register_plugins(register: Callable[[type], None]) -> None:
    for cls in (
        RepetitionPenalty,
        FrequencyPresencePenalty,
        NoRepeatNgram,
        BannedWords,
        MinNewTokens,
    ):
        register(cls)
