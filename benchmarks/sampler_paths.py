"""Sampling's tokens/s by the sampler's three paths, side by side.

    python benchmarks/sampler_paths.py                          # bundled char model, n = 4000
    python benchmarks/sampler_paths.py MODEL.onnx -n 2000 --repeat 9

Each repeat runs, one after the other on one thread, the sample strategy at its defaults:
``exact``, only the exact numpy path; ``scores``, the quick path for short rows (up to
``termlm.decoding.sampler.SMALL_VOCAB`` scores) on the processed scores; ``logits``, the quick
path reading the logits itself when no processor is at work (``DecodeContext.logit_bans``:
what ``termlm generate`` does); then greedy, and the model's steps alone. All three paths draw
the same tokens for the seed (checked here on every repeat). Then ``floor``: a stand-in that
computes what any exact sampler of this row has to, the exponentials of the logits at the
temperature and at 1 and their sums (the log-probability), in the same plain Python, and takes
the likeliest token: what ``logits`` costs beyond it is the nucleus and the draw. Medians;
``ratio``: tokens/s over the model's step rate; the paired ratios, per repeat, at the end.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import termlm.decoding.sampler as sampler
from termlm.decoding import (
    Choice,
    DecodeContext,
    OptionSpec,
    PluginRegistry,
    build_plugin_manager,
    generate,
)
from termlm.decoding.chain import ProcessorChain
from termlm.decoding.events import DoneEvent
from termlm.decoding.speed import PROMPT, load_line, loop_seconds, model_seconds
from termlm.runtime.onnx_model import load_model
from termlm.runtime.types import StepModel

ROOT = Path(__file__).resolve().parents[1]


def tokens(
    model: StepModel, tokenizer: Any, registry: PluginRegistry, n: int, strategy: str = "sample"
) -> list[int]:
    """The tokens sampling draws for seed 1 (the same ones ``loop_seconds`` times)."""
    for event in generate(
        model,
        tokenizer,
        PROMPT,
        registry=registry,
        strategy=strategy,
        max_new_tokens=n,
        seed=1,
        alternatives=0,
    ):
        if type(event) is DoneEvent:
            return event.result.token_ids
    return []


@contextmanager
def _path(name: str, small: int, no_bans: Any) -> Iterator[None]:
    """The sampler set to take only the ``name`` path while inside."""
    saved = ProcessorChain.logit_bans
    try:
        if name == "exact":
            sampler.SMALL_VOCAB = 0
        if name != "logits":
            ProcessorChain.logit_bans = no_bans  # type: ignore[method-assign]
        yield
    finally:
        sampler.SMALL_VOCAB = small
        ProcessorChain.logit_bans = saved  # type: ignore[method-assign]


class Floor:
    """The exponentials and sums of the sampler's quick path, then the likeliest token."""

    name: ClassVar[str] = "floor"
    description: ClassVar[str] = "benchmark stand-in"
    options: ClassVar[tuple[OptionSpec, ...]] = ()

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        session, feed, t = ctx.session, ctx.session.feed, 0.8  # the sampler's default
        bans = ctx.logit_bans() or ()
        while True:
            scores = session.logits[0].tolist()
            exps = [math.exp(s / t) for s in scores]
            ones = list(map(math.exp, scores))
            for i in bans:
                exps[i] = ones[i] = 0.0
            _total = sum(exps)  # what the nucleus is measured against
            token = exps.index(max(exps))
            logprob = -math.log(sum(ones) / ones[token])
            feed([token])
            yield Choice(token, math.exp(logprob), logprob)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", nargs="?", default=str(ROOT / "exported" / "shakespeare-char.onnx")
    )
    parser.add_argument("-n", "--tokens", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=7, help="median of this many runs")
    args = parser.parse_args()
    model = load_model(args.model, threads=1)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    clock, n, small = time.thread_time, args.tokens, sampler.SMALL_VOCAB
    print(f"{model.name}, vocabulary {model.vocab_size}, {n:,} tokens, one thread, cpu clock")
    print(load_line() + " (before)")
    rates: dict[str, list[float]] = {
        "exact": [],
        "scores": [],
        "logits": [],
        "greedy": [],
        "floor": [],
        "model": [],
    }
    registry.add(Floor, "benchmark")
    no_bans = staticmethod(lambda *_: None)
    for _ in range(args.repeat):
        reference: list[int] | None = None
        for path in ("exact", "scores", "logits"):
            with _path(path, small, no_bans):
                drawn = tokens(model, model.tokenizer, registry, n)
                seconds = loop_seconds(
                    model,
                    model.tokenizer,
                    "sample",
                    n,
                    registry=registry,
                    alternatives=0,
                    clock=clock,
                )[0]
            if reference is not None and drawn != reference:
                raise SystemExit(f"the {path} path drew other tokens than the exact one")
            reference = drawn
            rates[path].append(n / seconds)
        seconds = loop_seconds(
            model, model.tokenizer, "greedy", n, registry=registry, alternatives=0, clock=clock
        )[0]
        rates["greedy"].append(n / seconds)
        start = clock()
        floor = tokens(model, model.tokenizer, registry, n, strategy="floor")
        rates["floor"].append(n / (clock() - start))
        if len(floor) != n:
            raise SystemExit(f"the floor stand-in made {len(floor)} of {n} tokens")
        rates["model"].append(n / model_seconds(model, "sample", n, clock))
    model_rate = statistics.median(rates["model"])
    print(f"{'path':<8} {'tokens/s':>9} {'ratio':>6}")
    for name in rates:
        rate = statistics.median(rates[name])
        print(f"{name:<8} {rate:>9,.0f} {rate / model_rate:>6.2f}")
    for top, bottom in (
        ("scores", "exact"),
        ("logits", "scores"),
        ("logits", "exact"),
        ("logits", "floor"),
    ):
        paired = [a / b for a, b in zip(rates[top], rates[bottom], strict=True)]
        print(
            f"{top}/{bottom}: median {statistics.median(paired):.3f}, per repeat "
            + " ".join(f"{p:.3f}" for p in paired)
        )
    print(load_line() + " (after)")


if __name__ == "__main__":
    main()
