"""An example termlm plugin module: one logits processor and one strategy.

* ``shout`` (processor): adds ``shout`` to the score of every token whose text has capital
  letters, so the model prefers them. 0 (the default) is off.
* ``alternate`` (strategy): greedy on even positions, a temperature draw on odd ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np

from termlm.plugin_api import (
    API_VERSION,
    Choice,
    DecodeContext,
    OptionSpec,
    StepInfo,
    draw,
    hookimpl,
    warp,
)

if API_VERSION[0] != 1:  # written for the plugin API 1.x (see termlm.plugin_api)
    raise ImportError(f"termlm-plugin-example needs termlm's plugin API 1.x, not {API_VERSION}")


class Shout:
    name: ClassVar[str] = "shout"
    description: ClassVar[str] = "Favour tokens with capital letters."
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("shout", float, 0.0, min=0.0, max=20.0, help="bonus for capitalised tokens"),
    )

    def __init__(self, shout: float = 0.0) -> None:
        self.bonus = shout
        self.active = shout > 0  # off by default: skipped by the chain
        self._mask: np.ndarray | None = None

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        if self._mask is None:  # which tokens have capitals: [V] bool, computed once
            texts = [info.tokenizer.token_text(i) for i in range(info.vocab_size)]
            self._mask = np.array([t != t.lower() for t in texts])
        return np.where(self._mask, logits + self.bonus, logits).astype(np.float32)

    def start(self, history: np.ndarray, info: StepInfo) -> _NoHistory:
        """The fast path: the history is never read, so the loop need not build it."""
        return _NoHistory(lambda logits: self.process(logits, history[:, :0], info))


class _NoHistory:
    """A tracker for a processor that ignores the history: nothing to keep up to date."""

    def __init__(self, process: Callable[[np.ndarray], np.ndarray]) -> None:
        self.process = process

    def push(self, tokens: np.ndarray) -> None:
        pass

    def select(self, index: np.ndarray) -> _NoHistory:
        return self


class Alternate:
    name: ClassVar[str] = "alternate"
    description: ClassVar[str] = "Greedy on even positions, sampled on odd ones."
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec(
            "temperature", float, 1.0, min=0.0, max=10.0, min_inclusive=False, help="odd positions"
        ),
    )

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        position = 0
        while True:
            scores = ctx.scores()[0]  # [V], after the processors
            if position % 2 == 0:
                token = int(np.argmax(scores))
            else:
                token = draw(warp(scores, temperature=self.temperature), ctx.rng)
            ctx.session.feed([token])
            yield ctx.choice(scores, token)
            position += 1


@hookimpl
def register_plugins(register: Callable[[type], None]) -> None:
    register(Shout)
    register(Alternate)
