"""Greedy decoding: always the most likely token."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import ClassVar

from termlm.decoding import Choice, DecodeContext, OptionSpec, hookimpl
from termlm.decoding.contracts import token_logprob


class Greedy:
    name: ClassVar[str] = "greedy"
    description: ClassVar[str] = "Always the most likely next token (deterministic)."
    options: ClassVar[tuple[OptionSpec, ...]] = ()

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        scores_of, choice, feed = ctx.scores, ctx.choice, ctx.session.feed
        # No alternatives wanted and no processor at work: the maximum of the logits is the
        # maximum of the scores unless it is banned or not finite (then the scores decide).
        bans = ctx.logit_bans() if ctx.alternatives <= 0 else None
        if bans is not None:
            session, banned = ctx.session, frozenset(bans)
            while True:
                logits = session.logits[0]
                token = int(logits.argmax())  # the first maximum (argmax finds a NaN first)
                if token in banned or not math.isfinite(logits.item(token)):
                    scores = scores_of()[0]
                    token = int(scores.argmax())
                    logprob = token_logprob(scores, token, best=token)
                else:
                    logprob = token_logprob(logits, token, best=token, banned=bans)
                feed([token])
                yield Choice(token, math.exp(logprob), logprob)
        while True:
            scores = scores_of()[0]  # [V]
            token = int(scores.argmax())
            if ctx.alternatives > 0:
                chosen = choice(scores, token)
            else:  # ``choice(scores, token)`` without finding the maximum a second time
                logprob = token_logprob(scores, token, best=token)
                chosen = Choice(token, math.exp(logprob), logprob)
            feed([token])
            yield chosen


@hookimpl
def register_plugins(register: Callable[[type], None]) -> None:
    register(Greedy)
