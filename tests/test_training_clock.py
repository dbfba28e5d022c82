"""`--budget-clock cpu`: a time budget counted in this process's CPU seconds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from termlm.errors import ConfigError
from termlm.training.clock import CLOCKS, budget_clock

torch = pytest.importorskip("torch")

from termlm.training.loop import train  # noqa: E402
from termlm.training.options import TrainOptions, build_options  # noqa: E402

SMALL = {"embed": 8, "hidden": 16, "layers": 1, "context": 16, "batch_size": 4}


def test_the_cpu_clock_does_not_count_sleeping() -> None:
    wall, cpu = budget_clock("wall"), budget_clock("cpu")
    w0, c0 = wall(), cpu()
    time.sleep(0.2)
    assert wall() - w0 >= 0.2
    assert cpu() - c0 < 0.1  # asleep: no CPU time spent


def test_an_unknown_clock_is_refused(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\n" * 50, encoding="utf-8")
    with pytest.raises(ConfigError, match="--budget-clock"):
        build_options(corpus=str(corpus), level="char", arch="gru", budget_clock="moon", **SMALL)
    assert CLOCKS == ("wall", "cpu")


def test_a_cpu_budget_is_kept_and_recorded(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 200, encoding="utf-8")
    options = build_options(
        corpus=str(corpus), level="char", arch="gru", minutes=0.05, budget_clock="cpu",
        threads=1, out=str(tmp_path), name="cpu", **SMALL,
    )  # fmt: skip
    cpu_start = time.process_time()
    result = train(options, show_progress=False)
    cpu_spent = time.process_time() - cpu_start
    assert result["budget_clock"] == "cpu"
    assert result["steps"] > 0
    assert result["train_seconds"] <= 3.0 + 1.0  # the 3 s budget, give or take one step
    assert cpu_spent >= result["train_seconds"] * 0.9  # the budget was CPU time spent here
    config = json.loads((Path(result["run_dir"]) / "config.json").read_text())
    saved = TrainOptions.from_dict(config["train"])
    assert saved.budget_clock == "cpu"  # a resumed run keeps counting on the same clock
