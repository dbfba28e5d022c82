"""Greedy decoding: always the most likely token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

from termlm.decoding import Choice, DecodeContext, OptionSpec, hookimpl


class Greedy:
    name: ClassVar[str] = "greedy"
    description: ClassVar[str] = "Always the most likely next token (deterministic)."
    options: ClassVar[tuple[OptionSpec, ...]] = ()

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        while True:
            scores = ctx.scores()[0]  # [V]
            token = int(scores.argmax())
            choice = ctx.choice(scores, token)
            ctx.session.feed([token])
            yield choice


@hookimpl
def register_plugins(register: Callable[[type], None]) -> None:
    register(Greedy)
