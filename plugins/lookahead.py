"""Lookahead sampling: draw a few candidates, roll each out greedily, keep the one whose short
future the model finds most likely.

Plain sampling sometimes takes a token that leads nowhere (half a misspelled word, then noise);
greedy decoding avoids that but loops. Lookahead samples ``candidates`` distinct tokens (so the
text keeps its variety), reads them all in one batched call, lets each continue greedily for
``depth`` more tokens (one batched call per token), and commits the candidate with the best mean
log-probability over its roll-out. Cost: ``depth`` model calls with batch ``candidates`` per token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np

from termlm.decoding import Choice, DecodeContext, OptionSpec, hookimpl
from termlm.decoding.contracts import log_softmax
from termlm.decoding.sampling import warp
from termlm.decoding.session import Session

OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("candidates", int, 4, min=1, max=32, help="distinct tokens sampled at each step"),
    OptionSpec(
        "depth", int, 4, min=1, max=32, help="greedy tokens rolled out after each candidate"
    ),
    OptionSpec(
        "temperature",
        float,
        1.0,
        min=0.0,
        max=10.0,
        min_inclusive=False,
        help="temperature of the candidate draw",
    ),
    OptionSpec(
        "top_p",
        float,
        0.95,
        min=0.0,
        max=1.0,
        min_inclusive=False,
        help="candidates come from the most likely tokens holding this much probability",
    ),
)


class Lookahead:
    name: ClassVar[str] = "lookahead"
    description: ClassVar[str] = "Sample candidates, roll each out greedily, keep the best future."
    options: ClassVar[tuple[OptionSpec, ...]] = OPTIONS

    def __init__(
        self, candidates: int = 4, depth: int = 4, temperature: float = 1.0, top_p: float = 0.95
    ) -> None:
        for spec, value in zip(OPTIONS, (candidates, depth, temperature, top_p), strict=True):
            spec.check(value)
        self.candidates = candidates
        self.depth = depth
        self.temperature = temperature
        self.top_p = top_p

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        while True:
            scores = ctx.scores()[0]  # [V] after processors
            probs = warp(scores, temperature=self.temperature, top_p=self.top_p)
            pool = int(np.count_nonzero(probs > 0))
            if pool == 0:  # every token banned: nothing to draw (the loop says why it stopped)
                return
            k = max(1, min(self.candidates, pool))
            cands = ctx.rng.choice(probs.shape[0], size=k, replace=False, p=probs / probs.sum())
            cands = np.asarray(cands, dtype=np.int64)  # [k]
            if k == 1:
                token = int(cands[0])
                ctx.session.feed([token])
                yield ctx.choice(scores, token)
                continue
            first_logp = log_softmax(scores)[cands]  # [k]
            fork = ctx.session.select(np.zeros(k, dtype=np.int64))
            fork.feed(cands)  # one call, batch k
            after_candidate = fork.select(np.arange(k))
            mean = self._rollout(fork, ctx.scores, first_logp, ctx.eos_id, cands)
            best = int(np.argmax(mean))  # ties: the first drawn
            ctx.session = after_candidate.select([best])
            yield ctx.choice(scores, int(cands[best]))

    def _rollout(
        self,
        fork: Session,
        scores: Callable[[Session], np.ndarray],
        first_logp: np.ndarray,
        eos_id: int | None,
        cands: np.ndarray,
    ) -> np.ndarray:
        """Mean log-probability of each candidate followed by its greedy continuation: [k]."""
        total = first_logp.astype(np.float64).copy()
        count = np.ones_like(total)
        alive = np.ones(total.shape[0], dtype=bool) if eos_id is None else cands != eos_id
        for d in range(self.depth):
            logp = log_softmax(scores(fork))  # [k, V] after processors
            best = np.argmax(logp, axis=1)  # [k]
            gain = logp[np.arange(best.shape[0]), best]
            total += np.where(alive, gain, 0.0)
            count += alive
            if eos_id is not None:
                alive &= best != eos_id
            if d < self.depth - 1:
                fork.feed(best)
        return total / count


@hookimpl
def register_plugins(register: Callable[[type], None]) -> None:
    register(Lookahead)
