"""Sampling with temperature, top-k, top-p (nucleus), min-p and locally typical filtering."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np

from termlm.decoding import Choice, DecodeContext, OptionSpec, hookimpl
from termlm.decoding.sampler import Sampler, Uniforms

SAMPLE_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "temperature",
        float,
        0.8,
        min=0.0,
        max=10.0,
        min_inclusive=False,
        help="divide the scores by this: lower is safer, higher is wilder",
    ),
    OptionSpec("top_k", int, 0, min=0, help="sample among the k most likely tokens (0: off)"),
    OptionSpec(
        "top_p",
        float,
        0.95,
        min=0.0,
        max=1.0,
        min_inclusive=False,
        help="sample among the most likely tokens holding this much probability (1: off)",
    ),
    OptionSpec(
        "min_p",
        float,
        0.0,
        min=0.0,
        max=1.0,
        max_inclusive=False,
        help="drop tokens less likely than min_p times the best one (0: off)",
    ),
    OptionSpec(
        "typical_p",
        float,
        1.0,
        min=0.0,
        max=1.0,
        min_inclusive=False,
        help="locally typical sampling: keep this much mass of the least surprising tokens (1: off)",
    ),
)


class Sample:
    name: ClassVar[str] = "sample"
    description: ClassVar[str] = "Random sampling with temperature, top-k, top-p, min-p, typical-p."
    options: ClassVar[tuple[OptionSpec, ...]] = SAMPLE_OPTIONS

    def __init__(
        self,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 0.95,
        min_p: float = 0.0,
        typical_p: float = 1.0,
    ) -> None:
        for spec, value in zip(
            SAMPLE_OPTIONS, (temperature, top_k, top_p, min_p, typical_p), strict=True
        ):
            spec.check(value)
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.min_p = min_p
        self.typical_p = typical_p

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        # draws what ``draw(warp(scores, ...), ctx.rng)`` draws, in buffers kept between tokens
        sample = Sampler(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            typical_p=self.typical_p,
        )
        rng, scores_of, choice, feed = ctx.rng, ctx.scores, ctx.choice, ctx.session.feed
        session = ctx.session
        # No alternatives wanted and no processor at work: the sampler reads the logits and
        # bans what the processors would (it asks for the scores only on a row it hands on).
        # Nothing else draws from the generator then: its numbers are drawn ahead in blocks.
        bans = ctx.logit_bans() if ctx.alternatives <= 0 else None
        if bans is not None:
            uniforms = Uniforms(rng)

            def processed() -> np.ndarray:
                return scores_of()[0]

            while True:
                token = sample.from_logits(session.logits[0], bans, uniforms, processed)
                logprob = sample.logprob(token, processed)
                feed([token])
                yield Choice(token, math.exp(logprob), logprob)
        while True:
            scores = scores_of()[0]  # [V] after processors
            token = sample(scores, rng)
            if ctx.alternatives > 0:
                chosen = choice(scores, token)
            else:  # ``choice(scores, token)``, with the numbers the sampler already has
                logprob = sample.logprob(token, lambda: scores)  # noqa: B023 (this row's)
                chosen = Choice(token, math.exp(logprob), logprob)
            feed([token])
            yield chosen


@hookimpl
def register_plugins(register: Callable[[type], None]) -> None:
    register(Sample)
