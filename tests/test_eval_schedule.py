"""A time budget's validations leave room for training, however slow a validation is."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import itertools

import termlm.training.evaluation as evaluation
import termlm.training.loop as loop
from termlm.training.options import build_options


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


def test_slow_validations_do_not_eat_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step takes 0.1 s and each validation 5 s (a fake clock); validations are due every
    1.5 s of a 15 s budget. Each validation is followed by at least 0.75 s (7 steps) of training,
    instead of one validation after every step once the first has overrun its interval."""
    clock = FakeClock()
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(loop, "budget_clock", lambda kind: clock.perf_counter)
    # The plan's probe (one validation and one sample, timed before the run) reads a clock that
    # stands still: it plans validations as cheap, which the 5 s ones then overrun. On a real
    # clock it timed real work, and a slow moment of the machine moved the first validation.
    monkeypatch.setattr(evaluation, "budget_clock", lambda kind: lambda: 0.0)
    real_loss_on, real_evaluate = loop.loss_on, loop.evaluate

    def step(*args: Any, **kwargs: Any) -> Any:
        clock.now += 0.1
        return real_loss_on(*args, **kwargs)

    def slow_evaluate(*args: Any, **kwargs: Any) -> Any:
        clock.now += 5.0
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "loss_on", step)
    monkeypatch.setattr(loop, "evaluate", slow_evaluate)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcdefgh, ijklmnop.\n" * 200, encoding="utf-8")
    options = build_options(
        corpus=str(corpus), level="char", arch="gru", embed=4, hidden=8, layers=1, context=8,
        batch_size=2, minutes=0.25, threads=1, out=str(tmp_path), name="run",
    )  # fmt: skip
    result = loop.train(options, show_progress=False)
    lines = (Path(result["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert len(steps) >= 2  # the first validation and the last
    assert all(gap >= 7 for gap in gaps), steps


def test_validation_size_keeps_its_share_down_to_the_floor() -> None:
    from termlm.training.evalplan import (
        EVAL_SHARE,
        MIN_EVAL_TOKENS,
        MIN_WINDOW_EVAL_TOKENS,
        tokens_for_budget,
    )

    # 1 ms a token, 60 s budget, two validations with a 0.5 s sample each: 1 s of tokens each
    tokens = tokens_for_budget(1e-3, 60.0, 2, 100_000, fixed_seconds=0.5)
    assert tokens == int((EVAL_SHARE * 60.0 / 2 - 0.5) / 1e-3)
    # a model too slow for the floor: stateful models keep 256, window models go down to 128
    assert tokens_for_budget(1.0, 30.0, 2, 100_000) == MIN_EVAL_TOKENS
    slow = tokens_for_budget(1.0, 30.0, 2, 100_000, floor=MIN_WINDOW_EVAL_TOKENS)
    assert slow == MIN_WINDOW_EVAL_TOKENS < MIN_EVAL_TOKENS
    assert tokens_for_budget(1e-9, 60.0, 2, 5_000) is None  # all of them fit
