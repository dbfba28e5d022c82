"""The generation loop's speed against the model's own step rate, side by side, one thread.

    python benchmarks/generation_speed.py                      # bundled char model, n = 500 2000 8000
    python benchmarks/generation_speed.py MODEL.onnx -n 500 2000 --strategies greedy beam --json

For each strategy and length n, in one run and back to back (best of ``--repeat``):

* ``loop/s``: tokens per second of ``termlm.decoding.generate`` (all events consumed, the same
  way a listener that wants no alternatives, or the top 5 with ``--alternatives 5``, would);
* ``model/s``: the model alone doing the same number of steps in a plain loop, state carried:
  one row for greedy and sample; four rows with the state reordered each step (as beam search
  does) for beam; and for lookahead ``depth`` four-row steps per token;
* ``ratio``: loop/s over model/s (1.0: the loop costs nothing beyond the model);
* ``in-loop``: the share of the loop's own time spent inside the model's steps, timed during the
  same run (no pairing of separate runs: steadier on a busy machine, but blind to the model
  running slower inside the loop than alone).

The last column, ``vs n0``, is each strategy's loop/s over its loop/s at the smallest n: a loop
whose per-token cost is constant in the length keeps it near 1.

``--clock cpu`` times with this thread's CPU time instead of the wall clock (onnxruntime on one
thread runs in the calling thread): on a machine busy with other work, the wall clock counts the
time spent waiting for a core, the CPU clock does not.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from termlm.decoding import build_plugin_manager, generate
from termlm.decoding.events import DoneEvent
from termlm.runtime.onnx_model import OnnxLanguageModel, load_model
from termlm.runtime.types import reorder_state

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {},
    "sample": {},
    "beam": {"num_beams": 4},
    "lookahead": {"candidates": 4, "depth": 4},
}


CLOCK: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = time.perf_counter


def model_seconds(model: OnnxLanguageModel, strategy: str, n: int) -> float:
    """Seconds the model alone takes for the steps ``strategy`` needs to make n tokens."""
    options = STRATEGIES[strategy]
    rows = 1 if strategy in ("greedy", "sample") else 4
    calls = n * (options.get("depth", 1) if strategy == "lookahead" else 1)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, model.vocab_size, size=(calls, rows, 1), dtype=np.int64)
    axes = model.state_batch_axes()
    order = np.array([0, 0, 2, 1][:rows])
    state = model.initial_state(rows)
    window = np.zeros((rows, model.context), dtype=np.int64)
    start = clock()
    for t in range(calls):
        if not model.stateful:
            window = np.concatenate([window[:, 1:], ids[t]], axis=1)
            model.step(window, {})
            continue
        if rows > 1:
            state = reorder_state(state, axes, order)
        state = model.step(ids[t], state).state
    return clock() - start


class _Timed:
    """A model whose steps add up the time they take."""

    def __init__(self, model: OnnxLanguageModel) -> None:
        self.inner = model
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, tokens: np.ndarray, state: Any) -> Any:
        start = clock()
        try:
            return self.inner.step(tokens, state)
        finally:
            self.seconds += clock() - start


def loop_seconds(
    model: OnnxLanguageModel, strategy: str, n: int, *, alternatives: int, registry: Any
) -> tuple[float, float]:
    """Seconds ``generate`` takes to make n tokens (every event consumed), and of those the
    seconds inside the model's steps."""
    timed = _Timed(model)
    extra: dict[str, Any] = {"alternatives": alternatives} if alternatives >= 0 else {}
    start = clock()
    events = generate(
        timed,  # type: ignore[arg-type]
        model.tokenizer,
        "ROMEO:\n",
        registry=registry,
        strategy=strategy,
        options=STRATEGIES[strategy],
        max_new_tokens=n,
        seed=1,
        **extra,
    )
    result = None
    for event in events:
        if isinstance(event, DoneEvent):
            result = event.result
    seconds = clock() - start
    if result is None or result.error or len(result.token_ids) != n:
        what = "no result" if result is None else (result.error or result.stop_reason)
        raise SystemExit(f"{strategy} at n={n} did not make {n} tokens: {what}")
    return seconds, timed.seconds


def measure(
    model: OnnxLanguageModel,
    strategies: list[str],
    lengths: list[int],
    *,
    repeat: int,
    alternatives: int,
) -> list[dict[str, Any]]:
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    rows: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    for n in lengths:
        for strategy in strategies:
            model_s = loop_s = float("inf")
            share = 0.0
            for _ in range(repeat):  # interleaved, so both see the same machine
                model_s = min(model_s, model_seconds(model, strategy, n))
                total, inside = loop_seconds(
                    model, strategy, n, alternatives=alternatives, registry=registry
                )
                loop_s = min(loop_s, total)
                share = max(share, inside / total)
            loop_rate, model_rate = n / loop_s, n / model_s
            first.setdefault(strategy, loop_rate)
            rows.append(
                {
                    "strategy": strategy,
                    "n": n,
                    "loop_tokens_per_s": loop_rate,
                    "model_tokens_per_s": model_rate,
                    "ratio": loop_rate / model_rate,
                    "vs_first_n": loop_rate / first[strategy],
                    "in_loop_model_share": share,
                }
            )
            print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['strategy']:<10} {r['n']:>6,} {r['loop_tokens_per_s']:>9,.0f} "
        f"{r['model_tokens_per_s']:>9,.0f} {r['ratio']:>6.2f} {r['vs_first_n']:>6.2f} "
        f"{r['in_loop_model_share']:>7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", nargs="?", default=str(ROOT / "exported" / "shakespeare-char.onnx")
    )
    parser.add_argument("-n", "--lengths", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument(
        "--alternatives",
        type=int,
        default=0,
        help="alternatives per token the listener wants (-1: the loop's default)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--clock", choices=CLOCK, default="wall", help="wall clock, or this thread's CPU time"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    args = parser.parse_args()
    global clock
    clock = CLOCK[args.clock]
    model = load_model(args.model, threads=args.threads)
    print(f"{model.name}, {args.threads} thread(s), best of {args.repeat}, {args.clock} clock")
    print(
        f"{'strategy':<10} {'n':>6} {'loop/s':>9} {'model/s':>9} {'ratio':>6} {'vs n0':>6} {'in-loop':>7}"
    )
    rows = measure(
        model,
        args.strategies,
        args.lengths,
        repeat=args.repeat,
        alternatives=args.alternatives,
    )
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
