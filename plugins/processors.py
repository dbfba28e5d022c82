"""Built-in logits processors. Each is off at its default, so it costs nothing until set.

All work on scores [B, V] float32 and the token history [B, T] (prompt then reply), return a new
array and never produce NaN (tokens at -inf stay at -inf).

Each also offers ``start(history, info)``: a tracker that keeps what ``process`` would count in
the history (tokens seen, counts, n-grams, the reply's length) up to date token by token, so a
step costs the same at the 10th token and at the 10,000th. ``process`` is the reference the
trackers agree with (the tests compare them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

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


class _Stateless:
    """The tracker of a processor that does not read the history."""

    def __init__(self, process: Callable[[np.ndarray], np.ndarray]) -> None:
        self.process = process

    def push(self, tokens: np.ndarray) -> None:
        pass

    def select(self, index: np.ndarray) -> _Stateless:
        return self


class _Counts:
    """Per-row token counts [B, V] float32, updated as rows read tokens."""

    def __init__(self, counts: np.ndarray, process: Callable[[np.ndarray, np.ndarray], Any]):
        self.counts = counts
        self._process = process

    def push(self, tokens: np.ndarray) -> None:
        vocab = self.counts.shape[1]
        self.counts[np.arange(self.counts.shape[0]), np.clip(tokens, 0, vocab - 1)] += 1.0

    def select(self, index: np.ndarray) -> _Counts:
        return _Counts(self.counts[index], self._process)

    def process(self, logits: np.ndarray) -> np.ndarray:
        out: np.ndarray = self._process(logits, self.counts)
        return out


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
        return self._penalise(logits, _counts(history, logits.shape[1]))

    def start(self, history: np.ndarray, info: StepInfo) -> _Counts:
        return _Counts(_counts(history, info.vocab_size), self._penalise)

    def _penalise(self, logits: np.ndarray, counts: np.ndarray) -> np.ndarray:
        seen = counts > 0  # [B, V]
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
        return self._penalise(logits, _counts(generated, logits.shape[1]))

    def start(self, history: np.ndarray, info: StepInfo) -> _Counts:
        return _Counts(_counts(history[:, info.prompt_length :], info.vocab_size), self._penalise)

    def _penalise(self, logits: np.ndarray, counts: np.ndarray) -> np.ndarray:
        penalty = self.frequency * counts + self.presence * (counts > 0)  # counts [B, V]
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

    def start(self, history: np.ndarray, info: StepInfo) -> _NgramRows:
        rows = []
        for seq in history.tolist():
            row = _NgramRow(self.n)
            for token in seq:
                row.push(token)
            rows.append(row)
        return _NgramRows(rows)


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

    def start(self, history: np.ndarray, info: StepInfo) -> _Stateless:
        return _Stateless(lambda logits: self.process(logits, history[:0], info))


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
        return self._ban(logits, history.shape[1] - info.prompt_length, info)

    def start(self, history: np.ndarray, info: StepInfo) -> _Length:
        return _Length(self, history.shape[1] - info.prompt_length, info)

    def _ban(self, logits: np.ndarray, generated: int, info: StepInfo) -> np.ndarray:
        out = logits.copy()
        if info.eos_id is not None and generated < self.min_new_tokens:
            out[:, info.eos_id] = -np.inf
        return out


class _Length:
    """How many tokens the rows have read since the prompt (the same for every row)."""

    def __init__(self, owner: MinNewTokens, generated: int, info: StepInfo) -> None:
        self.owner, self.generated, self.info = owner, generated, info

    def push(self, tokens: np.ndarray) -> None:
        self.generated += 1

    def select(self, index: np.ndarray) -> _Length:
        return _Length(self.owner, self.generated, self.info)

    def process(self, logits: np.ndarray) -> np.ndarray:
        return self.owner._ban(logits, self.generated, self.info)


_FRESH = 32  # n-grams a row keeps in a plain list before freezing them into a shared level


class _NgramRow:
    """The n-grams one row has read: gram prefix (n - 1 tokens) -> the tokens that followed.

    Kept as a few frozen dicts shared between forks (sizes like a binary counter, merged as
    they fill) plus a short private list of the newest n-grams: forking a row copies at most
    ``_FRESH`` entries, and each token costs O(log n) amortised.
    """

    __slots__ = ("fresh", "levels", "n", "tail")

    def __init__(self, n: int) -> None:
        self.n = n
        self.tail: tuple[int, ...] = ()  # the last tokens read, at most n - 1
        self.levels: tuple[tuple[int, dict[tuple[int, ...], frozenset[int]]], ...] = ()
        self.fresh: list[tuple[tuple[int, ...], int]] = []

    def fork(self) -> _NgramRow:
        row = _NgramRow(self.n)
        row.tail, row.levels, row.fresh = self.tail, self.levels, list(self.fresh)
        return row

    def push(self, token: int) -> None:
        keep = self.n - 1
        if len(self.tail) == keep:
            self.fresh.append((self.tail, token))
            if len(self.fresh) >= _FRESH:
                self._freeze()
        self.tail = (*self.tail, token)[max(0, len(self.tail) + 1 - keep) :] if keep else ()

    def banned(self) -> set[int]:
        """The tokens that would repeat an n-gram of this row."""
        if len(self.tail) != self.n - 1:
            return set()
        tail = self.tail
        out = {token for prefix, token in self.fresh if prefix == tail}
        for _, level in self.levels:
            found = level.get(tail)
            if found:
                out.update(found)
        return out

    def _freeze(self) -> None:
        grams: dict[tuple[int, ...], set[int]] = {}
        for prefix, token in self.fresh:
            grams.setdefault(prefix, set()).add(token)
        size, level = len(self.fresh), {k: frozenset(v) for k, v in grams.items()}
        levels = list(self.levels)
        while levels and levels[-1][0] <= size:
            below, other = levels.pop()
            merged = dict(other)
            for prefix, tokens in level.items():
                merged[prefix] = merged[prefix] | tokens if prefix in merged else tokens
            size, level = size + below, merged
        levels.append((size, level))
        self.levels, self.fresh = tuple(levels), []


class _NgramRows:
    def __init__(self, rows: list[_NgramRow]) -> None:
        self.rows = rows

    def push(self, tokens: np.ndarray) -> None:
        for row, token in zip(self.rows, tokens.tolist(), strict=True):
            row.push(token)

    def select(self, index: np.ndarray) -> _NgramRows:
        return _NgramRows([self.rows[i].fork() for i in index.tolist()])

    def process(self, logits: np.ndarray) -> np.ndarray:
        out = logits.copy()
        vocab = out.shape[1]
        for i, row in enumerate(self.rows):
            banned = [t for t in row.banned() if 0 <= t < vocab]
            if banned:
                out[i, banned] = -np.inf
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
