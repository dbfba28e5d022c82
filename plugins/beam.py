"""Beam search: keep the ``num_beams`` best partial replies, all read in one batched model call.

Each step scores every beam's next tokens (after the processors), keeps the best ``num_beams``
continuations, and reorders the model's state by beam. Streaming: the prefix every live beam and
every kept finished reply share is settled, and yielded as soon as it grows; a ``BeamsUpdate``
shows every live beam after each step; the rest of the best reply comes at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
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
from termlm.decoding.paths import TokenPath
from termlm.errors import PluginError


class _Node:
    """One token of a path in the tree of beams (beams share their common prefix).

    ``jump``: a skip pointer (Myers' scheme: its depth depends only on this node's depth), so
    that the ancestor at any depth, and two paths' common ancestor, take O(log n) steps.
    """

    __slots__ = ("depth", "jump", "logprob", "parent", "token", "total")

    def __init__(self, parent: _Node | None, token: int, logprob: float, total: float) -> None:
        self.parent = parent
        self.token = token
        self.logprob = logprob  # of this token, for the streamed Choices
        self.total = total  # sum of the path's logprobs
        if parent is None:
            self.depth, self.jump = 0, self
        else:
            self.depth = parent.depth + 1
            up = parent.jump
            skip = parent.depth - up.depth == up.depth - up.jump.depth
            self.jump = up.jump if skip else parent

    def score(self, length_penalty: float) -> float:
        return self.total / (max(self.depth, 1) ** length_penalty)

    def tokens(self) -> TokenPath:
        """The path's tokens from the first, read from the tree (a tuple when iterated)."""
        return TokenPath(self)


def _ancestor(node: _Node, depth: int) -> _Node:
    while node.depth > depth:
        node = node.jump if node.jump.depth >= depth else node.parent  # type: ignore[assignment]
    return node


def _common(a: _Node, b: _Node) -> _Node:
    """The deepest node on both paths."""
    if a.depth > b.depth:
        a = _ancestor(a, b.depth)
    elif b.depth > a.depth:
        b = _ancestor(b, a.depth)
    while a is not b:
        if a.jump is not b.jump:
            a, b = a.jump, b.jump
        else:
            a, b = a.parent, b.parent  # type: ignore[assignment]
    return a


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
        show = getattr(ctx, "live_beams", True)
        root = _Node(None, -1, 0.0, 0.0)
        beams = [root]
        finished: list[_Node] = []  # the best n replies that ended with eos
        settled = root  # the deepest node every live beam and kept reply goes through
        for step in range(ctx.max_new_tokens):
            session = ctx.session
            logp = log_softmax(ctx.scores())  # [B, V] processed, temperature 1
            totals = np.array([b.total for b in beams])[:, None] + logp  # [B, V]
            flat = totals.reshape(-1)
            width = min(2 * n, flat.shape[0])
            negated = -flat
            top = np.argpartition(negated, width - 1)[:width]
            top = top[np.lexsort((top, negated[top]))]  # best first, ties by index
            vocab = logp.shape[1]
            rows: list[int] = []
            nxt: list[_Node] = []
            found = zip(
                top.tolist(), flat[top].tolist(), logp.reshape(-1)[top].tolist(), strict=True
            )
            for rank, (pos, value, token_logp) in enumerate(found):
                if not math.isfinite(value):
                    break
                row, token = divmod(pos, vocab)
                node = _Node(beams[row], token, token_logp, value)
                if eos is not None and token == eos:
                    if rank < n:
                        finished = _keep_best([*finished, node], n, lp)
                    continue
                rows.append(row)
                nxt.append(node)
                if len(nxt) == n:
                    break
            if not nxt and not np.isfinite(flat).any():  # every token banned: beams end here
                break
            if not nxt or self._done(finished, nxt, lp):
                beams = nxt
                break
            new_session = session.select(rows)
            new_session.feed([p.token for p in nxt])  # one call, batch = beams
            ctx.session = new_session
            if show:  # each beam's tokens as a path in the tree: nothing copied
                yield BeamsUpdate(
                    step=step,
                    beams=tuple(
                        Hypothesis(TokenPath(b), b.score(lp), parent=row)
                        for b, row in zip(nxt, rows, strict=True)
                    ),
                )
            beams = nxt
            common = beams[0]
            for other in [*beams[1:], *finished]:
                common = _common(common, other)
            if common.depth > settled.depth:
                yield from _choices(common, settled.depth)
                settled = common
            if ctx.cancelled:
                return
        candidates = _keep_best([*finished, *beams], max(n, 1), lp)
        if not candidates:
            return
        best_first = sorted(candidates, key=lambda p: -p.score(lp))
        yield NBest(
            tuple(
                Hypothesis(
                    p.tokens().as_tuple(), p.score(lp), finished=any(p is f for f in finished)
                )
                for p in best_first[: self.num_return_sequences]
            )
        )
        yield from _choices(best_first[0], settled.depth)

    def _done(self, finished: list[_Node], live: list[_Node], lp: float) -> bool:
        if len(finished) < self.num_beams:
            return False
        if self.early_stopping:
            return True
        worst = min(f.score(lp) for f in finished)
        best_live = max(p.score(lp) for p in live)
        return worst >= best_live


def _keep_best(paths: list[_Node], n: int, lp: float) -> list[_Node]:
    return sorted(paths, key=lambda p: -p.score(lp))[:n]


def _choices(node: _Node, after: int) -> Iterator[Choice]:
    """The Choices of ``node``'s path past depth ``after``, first to last."""
    path: list[_Node] = []
    while node.depth > after:
        path.append(node)
        node = node.parent  # type: ignore[assignment]
    for step in reversed(path):
        yield Choice(token_id=step.token, prob=float(np.exp(step.logprob)), logprob=step.logprob)


@hookimpl
def register_plugins(register: Callable[[type], None]) -> None:
    register(BeamSearch)
