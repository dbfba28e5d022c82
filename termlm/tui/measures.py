"""Measures of one generated text, for the decoding arena. Pure functions on token ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def ngrams(ids: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def distinct(ids: Sequence[int], n: int) -> float:
    """Distinct n-grams over all n-grams (1.0: nothing repeats; 0.0 when there are none)."""
    grams = ngrams(ids, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(ids: Sequence[int], n: int = 4) -> float:
    """The share of n-grams that already appeared earlier in the text."""
    grams = ngrams(ids, n)
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams) if grams else 0.0


@dataclass(frozen=True)
class Measures:
    tokens: int
    mean_logprob: float  # nats per token (of the distribution the strategy chose from)
    distinct_1: float
    distinct_2: float
    repetition: float  # share of 4-grams seen before
    tokens_per_second: float

    def lines(self) -> list[str]:
        return [
            f"tokens      {self.tokens}",
            f"mean log p  {self.mean_logprob:.3f}",
            f"distinct-1  {self.distinct_1:.2f}",
            f"distinct-2  {self.distinct_2:.2f}",
            f"repetition  {self.repetition:.2f}",
            f"tokens/s    {self.tokens_per_second:.0f}",
        ]


def measure(ids: Sequence[int], logprobs: Sequence[float], seconds: float) -> Measures:
    n = len(ids)
    return Measures(
        tokens=n,
        mean_logprob=sum(logprobs) / len(logprobs) if logprobs else 0.0,
        distinct_1=distinct(ids, 1),
        distinct_2=distinct(ids, 2),
        repetition=repetition_rate(ids),
        tokens_per_second=n / seconds if seconds > 0 else 0.0,
    )
