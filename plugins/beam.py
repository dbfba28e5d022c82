"""Beam search: keep the ``num_beams`` best partial replies, all read in one batched model call.

Each step scores every beam's next tokens (after the processors), keeps the best ``num_beams``
continuations, and reorders the model's state by beam. Streaming: the prefix every live beam and
every kept finished reply share is settled, and yielded as soon as it grows; a ``BeamsUpdate``
shows every live beam after each step; the rest of the best reply comes at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from termlm.decoding import (
    BeamsUpdate,
    Choice,
    DecodeContext,
    Hypothesis,
    NBest,
    OptionSpec,
    hookimpl,
)
from termlm.decoding.contracts import Item, log_softmax
from termlm.errors import PluginError


@dataclass(frozen=True)
class _Path:
    tokens: tuple[int, ...]
    logprobs: tuple[float, ...]  # per token, for the streamed Choices
    total: float  # sum of logprobs

    def score(self, length_penalty: float) -> float:
        return self.total / (max(len(self.tokens), 1) ** length_penalty)


class BeamSearch:
    name: ClassVar[str] = "beam"
    description: ClassVar[str] = "Beam search: the most likely whole reply among num_beams paths."
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("num_beams", int, 4, min=1, max=32, help="paths kept at each step"),
        OptionSpec(
            "length_penalty",
            float,
            1.0,
            min=-10.0,
            max=10.0,
            help="score = logprob / length**length_penalty; > 0 favours longer replies",
        ),
        OptionSpec(
            "early_stopping",
            bool,
            False,
            help="stop as soon as num_beams replies have ended with the eos token",
        ),
        OptionSpec(
            "num_return_sequences",
            int,
            1,
            min=1,
            max=32,
            help="how many of the best replies to report (at most num_beams)",
        ),
    )

    def __init__(
        self,
        num_beams: int = 4,
        length_penalty: float = 1.0,
        early_stopping: bool = False,
        num_return_sequences: int = 1,
    ) -> None:
        for spec, value in zip(
            self.options,
            (num_beams, length_penalty, early_stopping, num_return_sequences),
            strict=True,
        ):
            spec.check(value)
        if num_return_sequences > num_beams:
            raise PluginError(
                f"num_return_sequences ({num_return_sequences}) must be <= num_beams ({num_beams})",
                f"raise num_beams to at least {num_return_sequences}",
            )
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.num_return_sequences = num_return_sequences

    def run(self, ctx: DecodeContext) -> Iterator[Item]:
        n = self.num_beams
        lp = self.length_penalty
        eos = ctx.eos_id
        beams = [_Path((), (), 0.0)]
        finished: list[_Path] = []  # the best n replies that ended with eos
        emitted = 0
        for step in range(ctx.max_new_tokens):
            session = ctx.session
            logp = log_softmax(ctx.scores())  # [B, V] processed, temperature 1
            totals = np.array([b.total for b in beams])[:, None] + logp  # [B, V]
            flat = totals.reshape(-1)
            width = min(2 * n, flat.shape[0])
            top = np.argpartition(-flat, width - 1)[:width]
            top = top[np.lexsort((top, -flat[top]))]  # best first, ties by index
            rows: list[int] = []
            nxt: list[_Path] = []
            for rank, pos in enumerate(top):
                value = float(flat[pos])
                if not np.isfinite(value):
                    break
                row, token = divmod(int(pos), logp.shape[1])
                parent = beams[row]
                path = _Path(
                    (*parent.tokens, token), (*parent.logprobs, float(logp[row, token])), value
                )
                if eos is not None and token == eos:
                    if rank < n:
                        finished = _keep_best([*finished, path], n, lp)
                    continue
                rows.append(row)
                nxt.append(path)
                if len(nxt) == n:
                    break
            if not nxt and not np.isfinite(flat).any():  # every token banned: beams end here
                break
            if not nxt or self._done(finished, nxt, lp):
                beams = nxt
                break
            new_session = session.select(rows)
            new_session.feed([p.tokens[-1] for p in nxt])  # one call, batch = beams
            ctx.session = new_session
            beams = nxt
            yield BeamsUpdate(
                step=step,
                beams=tuple(Hypothesis(b.tokens, b.score(lp)) for b in beams),
            )
            settled = _common_prefix([*(b.tokens for b in beams), *(f.tokens for f in finished)])
            for i in range(emitted, settled):
                yield _choice(beams[0], i)
            emitted = max(emitted, settled)
            if ctx.cancelled:
                return
        candidates = _keep_best([*finished, *beams], max(n, 1), lp)
        if not candidates:
            return
        best_first = sorted(candidates, key=lambda p: -p.score(lp))
        yield NBest(
            tuple(
                Hypothesis(p.tokens, p.score(lp), finished=any(p is f for f in finished))
                for p in best_first[: self.num_return_sequences]
            )
        )
        best = best_first[0]
        for i in range(emitted, len(best.tokens)):
            yield _choice(best, i)

    def _done(self, finished: list[_Path], live: list[_Path], lp: float) -> bool:
        if len(finished) < self.num_beams:
            return False
        if self.early_stopping:
            return True
        worst = min(f.score(lp) for f in finished)
        best_live = max(p.score(lp) for p in live)
        return worst >= best_live


def _keep_best(paths: list[_Path], n: int, lp: float) -> list[_Path]:
    return sorted(paths, key=lambda p: -p.score(lp))[:n]


def _common_prefix(seqs: list[tuple[int, ...]]) -> int:
    if not seqs:
        return 0
    first = seqs[0]
    size = min(len(s) for s in seqs)
    for i in range(size):
        if any(s[i] != first[i] for s in seqs):
            return i
    return size


def _choice(path: _Path, i: int) -> Choice:
    logprob = path.logprobs[i]
    return Choice(token_id=path.tokens[i], prob=float(np.exp(logprob)), logprob=logprob)


@hookimpl
def register_plugins(register: Callable[[type], None]) -> None:
    register(BeamSearch)
