"""Sampling's tokens/s with the sampler's quick path for short rows and without it, side by side.

    python benchmarks/sampler_paths.py                          # bundled char model, n = 4000
    python benchmarks/sampler_paths.py MODEL.onnx -n 2000 --repeat 9

Each repeat runs, one after the other on one thread: the sample strategy at its defaults with
only the exact numpy path (``exact``), the same with the quick path (``quick``: rows up to
``termlm.decoding.sampler.SMALL_VOCAB`` scores), greedy, and the model's steps alone. Both paths
draw the same tokens for the seed (checked here on every repeat). Medians; ``ratio``: tokens/s
over the model's step rate; ``quick/exact``: the paired ratio of the two paths, per repeat.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import termlm.decoding.sampler as sampler
from termlm.decoding import PluginRegistry, build_plugin_manager, generate
from termlm.decoding.events import DoneEvent
from termlm.decoding.speed import PROMPT, load_line, loop_seconds, model_seconds
from termlm.runtime.onnx_model import load_model
from termlm.runtime.types import StepModel

ROOT = Path(__file__).resolve().parents[1]


def tokens(model: StepModel, tokenizer: Any, registry: PluginRegistry, n: int) -> list[int]:
    """The tokens sampling draws for seed 1 (the same ones ``loop_seconds`` times)."""
    for event in generate(
        model,
        tokenizer,
        PROMPT,
        registry=registry,
        strategy="sample",
        max_new_tokens=n,
        seed=1,
        alternatives=0,
    ):
        if type(event) is DoneEvent:
            return event.result.token_ids
    return []


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
    rates: dict[str, list[float]] = {"exact": [], "quick": [], "greedy": [], "model": []}
    for _ in range(args.repeat):
        sampler.SMALL_VOCAB = 0
        try:
            exact_tokens = tokens(model, model.tokenizer, registry, n)
            seconds = loop_seconds(
                model, model.tokenizer, "sample", n, registry=registry, alternatives=0, clock=clock
            )[0]
        finally:
            sampler.SMALL_VOCAB = small
        rates["exact"].append(n / seconds)
        if tokens(model, model.tokenizer, registry, n) != exact_tokens:
            raise SystemExit("the two paths drew different tokens")
        for name, strategy in (("quick", "sample"), ("greedy", "greedy")):
            seconds = loop_seconds(
                model, model.tokenizer, strategy, n, registry=registry, alternatives=0, clock=clock
            )[0]
            rates[name].append(n / seconds)
        rates["model"].append(n / model_seconds(model, "sample", n, clock))
    model_rate = statistics.median(rates["model"])
    print(f"{'path':<8} {'tokens/s':>9} {'ratio':>6}")
    for name in ("exact", "quick", "greedy", "model"):
        rate = statistics.median(rates[name])
        print(f"{name:<8} {rate:>9,.0f} {rate / model_rate:>6.2f}")
    paired = [q / e for q, e in zip(rates["quick"], rates["exact"], strict=True)]
    print(
        f"quick/exact: median {statistics.median(paired):.3f}, per repeat "
        + " ".join(f"{p:.3f}" for p in paired)
    )
    print(load_line() + " (after)")


if __name__ == "__main__":
    main()
