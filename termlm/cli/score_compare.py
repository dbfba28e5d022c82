"""`termlm score --compare`: two models over one text, character by character, as they read it.

Each model's tokens are placed in the text (termlm.cli.textspans) and a token's surprisal, in
bits, is spread over its characters. Characters are settled as soon as both models have read past
them, so the coloured text streams and memory stays bounded by the two models' distance apart,
not by the text: the words where the models disagree most are kept in a small heap.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from termlm.cli.textspans import TokenSpans
from termlm.decoding.textscore import LN2, ScoreTotals, TokenScore

TOP_DISAGREEMENTS = 5


@dataclass(frozen=True)
class Disagreement:
    start: int
    end: int
    text: str
    bits: tuple[float, float]  # what the span cost each model

    @property
    def gap(self) -> float:
        return abs(self.bits[0] - self.bits[1])

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "bits": list(self.bits)}


class CharCosts:
    """One model's reading of the text: bits per character, up to where it has read."""

    def __init__(self, text: str, tokenizer: Any, scores: Iterator[TokenScore]) -> None:
        self.text = text
        self.spans = TokenSpans(text, tokenizer)
        self.scores = scores
        self.totals = ScoreTotals(chars=len(text))
        self.covered = 0  # costs are known for every character before this
        self.done = False
        self._pending: deque[tuple[int, int, float]] = deque()  # (start, end, bits per char)

    def read_one(self) -> None:
        """Read one more token (or learn that there are none)."""
        score = next(self.scores, None)
        if score is None:
            self.done = True
            self.covered = len(self.text)
            return
        self.totals.add(score)
        span = self.spans.next(score.id)
        if span is None:
            return
        start, end = span
        self._pending.append((start, end, score.surprisal / LN2 / (end - start)))
        self.covered = max(self.covered, end)

    def cost(self, index: int) -> float:
        """Bits of character ``index`` (NaN where no token lies); indexes must not go back."""
        while self._pending and self._pending[0][1] <= index:
            self._pending.popleft()
        if self._pending and self._pending[0][0] <= index:
            return self._pending[0][2]
        return math.nan


@dataclass
class _Words:
    """The words' costs under both models, the largest differences kept."""

    text: str
    start: int | None = None
    bits: list[float] = field(default_factory=lambda: [0.0, 0.0])
    heap: list[tuple[float, int, Disagreement]] = field(default_factory=list)

    def add(self, index: int, a: float, b: float) -> None:
        if self.text[index].isspace():
            self.finish(index)
            return
        if self.start is None:
            self.start, self.bits = index, [0.0, 0.0]
        self.bits[0] += 0.0 if math.isnan(a) else a
        self.bits[1] += 0.0 if math.isnan(b) else b

    def finish(self, end: int) -> None:
        if self.start is None:
            return
        spot = Disagreement(
            self.start, end, self.text[self.start : end], (self.bits[0], self.bits[1])
        )
        self.start = None
        if spot.gap <= 0:
            return
        item = (spot.gap, -spot.start, spot)  # ties: the earlier word wins
        if len(self.heap) < TOP_DISAGREEMENTS:
            heapq.heappush(self.heap, item)
        else:
            heapq.heappushpop(self.heap, item)

    def largest(self) -> list[Disagreement]:
        return [spot for _, _, spot in sorted(self.heap, key=lambda x: (-x[0], -x[1]))]


@dataclass
class Comparison:
    names: tuple[str, str]
    totals: tuple[ScoreTotals, ScoreTotals]
    disagreements: list[Disagreement]
    chars: int

    @property
    def better(self) -> str | None:
        a, b = self.totals
        if not (a.tokens and b.tokens) or math.isclose(a.bpc, b.bpc, rel_tol=1e-9):
            return None
        return self.names[0] if a.bpc < b.bpc else self.names[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "models": [
                {"model": name, **totals.to_json()}
                for name, totals in zip(self.names, self.totals, strict=True)
            ],
            "better": self.better,
            "chars": self.chars,
            "disagreements": [d.to_json() for d in self.disagreements],
        }


Settled = Callable[[int, int, list[tuple[float, float]]], None]


def compare(
    text: str,
    names: tuple[str, str],
    first: CharCosts,
    second: CharCosts,
    on_settled: Settled | None = None,
) -> Comparison:
    """Read both models to the end; ``on_settled(start, end, costs)`` hears of each settled run
    of characters (``costs[i]``: the bits of character ``start + i`` under each model)."""
    words = _Words(text)
    at = 0
    while at < len(text):
        behind = first if first.covered <= second.covered and not first.done else second
        behind.read_one()
        ready = min(first.covered, second.covered)
        if ready <= at:
            continue
        costs = [(first.cost(i), second.cost(i)) for i in range(at, ready)]
        for offset, (a, b) in enumerate(costs):
            words.add(at + offset, a, b)
        if on_settled is not None:
            on_settled(at, ready, costs)
        at = ready
    while not (first.done and second.done):  # tokens placed nowhere still count in the totals
        (first if not first.done else second).read_one()
    words.finish(len(text))
    return Comparison(names, (first.totals, second.totals), words.largest(), len(text))
