"""Speed of a model in the runtime: what `termlm bench` measures, in numpy and onnxruntime.

* ``tokens_per_s``: one stream, one step per token, state carried (the way termlm generates).
* ``prefill_tokens_per_s``: one call over a long prompt (up to 256 tokens, at most the context;
  null for window models, which have no state to fill).
* ``batch4_step_ratio``: time of one step over 4 rows / one step over 1 row (below 4: batching pays).
* ``beam4_step_ratio``: the same with the beams' state reordered first, as beam search does.
* ``window_tokens_per_s``: the tutorial's way: re-read the whole window for every new token.
* ``bytes_per_step`` and ``bound_tokens_per_s``: weight bytes one step reads, and the speed the
  machine's memory bandwidth allows if every step had to read them all from memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from termlm.runtime.onnx_model import OnnxLanguageModel
from termlm.runtime.types import State, reorder_state


def best_seconds(fn: Callable[[], Any], *, repeat: int = 5, number: int = 1) -> float:
    """The fastest of `repeat` timings of `number` calls, per call (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def memory_bandwidth(megabytes: int = 64) -> float:
    """Bytes per second a large numpy copy moves (reads plus writes).

    Two buffers of ``megabytes`` each: twice the largest last-level cache of most CPUs, so the
    copy runs from memory; a larger pair gives the same figure and costs its first touch of every
    page (seconds on a machine where page faults are slow)."""
    source = np.ones(megabytes * 1024 * 1024 // 8, dtype=np.float64)
    target = np.empty_like(source)
    seconds = best_seconds(lambda: np.copyto(target, source), repeat=3)
    return 2 * source.nbytes / seconds


def _tokens(model: OnnxLanguageModel, batch: int, length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = min(2, model.vocab_size - 1)
    return rng.integers(low, model.vocab_size, size=(batch, length), dtype=np.int64)


def _warm_state(model: OnnxLanguageModel, batch: int, length: int) -> State:
    """A state after `length` tokens: steps are timed mid-text, not at the empty start."""
    state = model.initial_state(batch)
    if model.stateful and length:
        state = model.step(_tokens(model, batch, length, seed=1), state).state
    return state


def stream_tokens_per_s(model: OnnxLanguageModel, tokens: int, *, repeat: int = 3) -> float:
    """Generate-like: feed one token at a time, carrying the state (a window model re-reads)."""
    ids = _tokens(model, 1, tokens)
    warm = min(16, model.context // 2)
    start_state = _warm_state(model, 1, warm)
    grows = bool(model.state_time_axes())  # a memory or cache: kept within the context
    best = float("inf")
    for _ in range(repeat):
        history = _tokens(model, 1, model.context, seed=2)
        state, length = start_state, warm
        start = time.perf_counter()
        for t in range(tokens):
            if grows and length >= model.context:
                state, length = start_state, warm
            if model.stateful:
                state = model.step(ids[:, t : t + 1], state).state
                length += 1
            else:
                history = np.concatenate([history[:, 1:], ids[:, t : t + 1]], axis=1)
                model.step(history, {})
        best = min(best, time.perf_counter() - start)
    return tokens / best


def prefill_tokens_per_s(model: OnnxLanguageModel, length: int) -> float:
    ids = _tokens(model, 1, length)
    seconds = best_seconds(lambda: model.step(ids, model.initial_state(1)), repeat=3)
    return length / seconds


def window_tokens_per_s(model: OnnxLanguageModel, tokens: int) -> float:
    """Each new token re-reads the whole window of `context` tokens from the initial state."""
    window = _tokens(model, 1, model.context)
    state = model.initial_state(1)
    count = max(1, min(tokens, 50))
    seconds = best_seconds(lambda: model.step(window, state), repeat=2, number=count)
    return 1.0 / seconds


def step_ratios(model: OnnxLanguageModel) -> tuple[float, float]:
    """(batch4, beam4): a 4-row step (and one with reordered state) over a 1-row step."""
    past = min(16, model.context // 2)
    one_state = _warm_state(model, 1, past)
    four_state = _warm_state(model, 4, past)
    one = _tokens(model, 1, 1)
    four = _tokens(model, 4, 1)
    if not model.stateful:
        one = _tokens(model, 1, model.context)
        four = _tokens(model, 4, model.context)
    single = best_seconds(lambda: model.step(one, one_state), repeat=5, number=20)
    batch4 = best_seconds(lambda: model.step(four, four_state), repeat=5, number=20)
    axes = model.state_batch_axes()
    order = np.array([0, 0, 2, 1])

    def beam_step() -> None:
        model.step(four, reorder_state(four_state, axes, order))

    beam4 = best_seconds(beam_step, repeat=5, number=20)
    return batch4 / single, beam4 / single


def run_bench(model: OnnxLanguageModel, *, tokens: int = 200) -> dict[str, Any]:
    """Every runtime figure of `termlm bench` for one model (torch's is added by the command)."""
    prefill_len = min(256, model.context)
    batch4, beam4 = step_ratios(model)
    bandwidth = memory_bandwidth()
    bytes_per_step = model.weight_bytes
    return {
        "model": model.name,
        "arch": model.meta.arch + ("-bi" if model.meta.config.bidirectional else ""),
        "params": model.meta.params,
        "threads": model.session.get_session_options().intra_op_num_threads,
        "tokens": tokens,
        "tokens_per_s": stream_tokens_per_s(model, tokens),
        # a window model has no prefill: it reads its whole window for every token
        "prefill_tokens": prefill_len if model.stateful else None,
        "prefill_tokens_per_s": prefill_tokens_per_s(model, prefill_len)
        if model.stateful
        else None,
        "batch4_step_ratio": batch4,
        "beam4_step_ratio": beam4,
        "window_tokens_per_s": window_tokens_per_s(model, tokens),
        "bytes_per_step": bytes_per_step,
        "memory_bandwidth_gb_s": bandwidth / 1e9,
        "bound_tokens_per_s": bandwidth / bytes_per_step if bytes_per_step else None,
    }
