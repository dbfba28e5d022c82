"""The generation loop's speed against the model's own step rate, side by side in one run.

For each strategy and length n, repeated ``repeat`` times and interleaved (a model run, then a
loop run, then the next repeat: both see the same machine), the medians of:

* ``loop/s``: tokens per second of ``generate`` (every event consumed, as a listener that wants
  ``alternatives`` alternatives per token, and the live beams when ``live_beams``, would;
  ``termlm generate`` wants neither, the chat wants 5 alternatives and the live beams);
* ``model/s``: the model alone doing the steps that strategy needs for n tokens in a plain loop,
  state carried: one row for greedy and sample; four rows with the state reordered at each step
  (as beam search does) for beam; ``depth`` four-row steps per token for lookahead;
* ``ratio``: loop/s over model/s, as the median over the repeats of each repeat's pair (its
  model run and its loop run, back to back): a machine whose speed drifts during the run moves
  the two medians apart, not the pairs (1.0: the loop costs nothing beyond the model);
* ``vs n0``: how the loop's speed at this n compares with the same strategy's at the smallest
  n (a per-token cost that does not grow with the length keeps it near 1). On a steady machine,
  with a model whose step costs the same at any length, this is loop/s over loop/s at n0; it is
  taken as ``ratio`` over ``ratio`` at n0, which leaves out the machine's speed drifting
  between the two (minutes apart) and a model step that grows with its memory: what is left is
  the loop's own cost;
* ``in-loop``: the share of the loop's time spent inside the model's steps, timed in one more
  loop run (the first repeat's; its timer around every step stays out of ``loop/s``). It is
  often above ``ratio``: a model step interleaved with any other work runs slower than the same
  step in a tight loop (caches), which ``model/s`` does not see.

The ``cpu`` clock counts this thread's CPU time (onnxruntime on one thread runs in the calling
thread): on a busy machine it leaves out the time spent waiting for a core. With more threads
only the wall clock is right.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from termlm.decoding.events import DoneEvent
from termlm.decoding.loop import generate
from termlm.decoding.registry import PluginRegistry
from termlm.errors import ConfigError
from termlm.runtime.types import StepModel, StepOutput, reorder_state

STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {},
    "sample": {},
    "beam": {"num_beams": 4},
    "lookahead": {"candidates": 4, "depth": 4},
}
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
PROMPT = "ROMEO:\n"


@dataclass(frozen=True)
class SpeedRow:
    strategy: str
    n: int
    loop_tokens_per_s: float
    model_tokens_per_s: float
    ratio: float
    vs_first_n: float
    in_loop_model_share: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "n": self.n,
            "loop_tokens_per_s": round(self.loop_tokens_per_s, 1),
            "model_tokens_per_s": round(self.model_tokens_per_s, 1),
            "ratio": round(self.ratio, 3),
            "vs_first_n": round(self.vs_first_n, 3),
            "in_loop_model_share": round(self.in_loop_model_share, 3),
        }


HEADER = f"{'strategy':<10} {'n':>6} {'loop/s':>9} {'model/s':>9} {'ratio':>6} {'vs n0':>6} {'in-loop':>7}"


def format_row(r: SpeedRow) -> str:
    return (
        f"{r.strategy:<10} {r.n:>6,} {r.loop_tokens_per_s:>9,.0f} "
        f"{r.model_tokens_per_s:>9,.0f} {r.ratio:>6.2f} {r.vs_first_n:>6.2f} "
        f"{r.in_loop_model_share:>7.2f}"
    )


def check_request(strategies: Sequence[str], lengths: Sequence[int], repeat: int) -> None:
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ConfigError(
            f"no speed measurement for strategy {unknown[0]!r}", f"use {', '.join(STRATEGIES)}"
        )
    if not lengths or any(n < 1 for n in lengths):
        raise ConfigError("every length must be 1 or more", "e.g. -n 500 2000 8000")
    if repeat < 1:
        raise ConfigError(f"--repeat must be 1 or more, got {repeat}")


def pick_clock(name: str | None, threads: int) -> str:
    """The clock to use: ``cpu`` by default on one thread, ``wall`` with more."""
    if name is None:
        return "cpu" if threads == 1 else "wall"
    if name not in CLOCKS:
        raise ConfigError(f"unknown clock {name!r}", "use cpu or wall")
    if name == "cpu" and threads != 1:
        raise ConfigError(
            "the cpu clock counts one thread only", "use --clock wall with more threads"
        )
    return name


class _Timed:
    """A model whose steps add up the time they take."""

    def __init__(self, model: StepModel, clock: Callable[[], float]) -> None:
        self.inner = model
        self.clock = clock
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, tokens: np.ndarray, state: Any) -> StepOutput:
        start = self.clock()
        try:
            return self.inner.step(tokens, state)
        finally:
            self.seconds += self.clock() - start


def model_seconds(model: StepModel, strategy: str, n: int, clock: Callable[[], float]) -> float:
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


def loop_seconds(
    model: StepModel,
    tokenizer: Any,
    strategy: str,
    n: int,
    *,
    registry: PluginRegistry,
    alternatives: int,
    clock: Callable[[], float],
    live_beams: bool = False,
    timed: bool = False,
) -> tuple[float, float]:
    """Seconds ``generate`` takes to make n tokens (every event consumed), and of those the
    seconds inside the model's steps (with ``timed``; else 0: a timer around every step costs
    two clock reads, which the model alone does not pay). ConfigError when it stops short of
    n tokens."""
    timer = _Timed(model, clock) if timed else None
    start = clock()
    events = generate(
        timer or model,  # type: ignore[arg-type]
        tokenizer,
        PROMPT,
        registry=registry,
        strategy=strategy,
        options=STRATEGIES[strategy],
        max_new_tokens=n,
        seed=1,
        alternatives=alternatives,
        live_beams=live_beams,
    )
    result = None
    for event in events:
        if type(event) is DoneEvent:
            result = event.result
    seconds = clock() - start
    if result is None or result.error or len(result.token_ids) != n:
        what = "no result" if result is None else (result.error or result.stop_reason)
        raise ConfigError(
            f"{strategy} made {0 if result is None else len(result.token_ids)} of {n} tokens "
            f"({what})",
            "a model with an end token may stop early: try a smaller -n",
        )
    return seconds, timer.seconds if timer is not None else 0.0


def measure(
    model: StepModel,
    tokenizer: Any,
    strategies: Sequence[str],
    lengths: Sequence[int],
    *,
    registry: PluginRegistry,
    repeat: int = 3,
    alternatives: int = 0,
    clock: str = "cpu",
    live_beams: bool = False,
) -> Iterator[SpeedRow]:
    """One row per (n, strategy), in that order, as each is measured (medians of ``repeat``)."""
    tick = CLOCKS[clock]
    first: dict[str, float] = {}
    loop_seconds(model, tokenizer, "greedy", 8, registry=registry, alternatives=0, clock=tick)
    for n in sorted(lengths):
        for strategy in strategies:
            model_runs: list[float] = []
            loop_runs: list[float] = []
            shares: list[float] = []
            for i in range(repeat):  # interleaved, so both see the same machine
                model_runs.append(model_seconds(model, strategy, n, tick))
                for timed in (False, True) if i == 0 else (False,):
                    total, inside = loop_seconds(
                        model,
                        tokenizer,
                        strategy,
                        n,
                        registry=registry,
                        alternatives=alternatives,
                        clock=tick,
                        live_beams=live_beams,
                        timed=timed,
                    )
                    if timed:  # the share only: the timer's own cost stays out of loop/s
                        shares.append(inside / total if total > 0 else 0.0)
                    else:
                        loop_runs.append(total)
            loop_rate = n / max(statistics.median(loop_runs), 1e-9)
            model_rate = n / max(statistics.median(model_runs), 1e-9)
            paired = [m / max(loop, 1e-9) for m, loop in zip(model_runs, loop_runs, strict=True)]
            ratio = statistics.median(paired)
            first.setdefault(strategy, ratio)
            yield SpeedRow(
                strategy=strategy,
                n=n,
                loop_tokens_per_s=loop_rate,
                model_tokens_per_s=model_rate,
                ratio=ratio,
                vs_first_n=ratio / first[strategy],
                in_loop_model_share=statistics.median(shares),
            )


def load_line() -> str:
    """The machine's load average, for the record (figures on a busy machine are noisier)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count() or '?'} cores"
