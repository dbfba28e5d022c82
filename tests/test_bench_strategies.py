"""`termlm bench --strategies` and the speed table behind it, on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run, write_models

from termlm.decoding import build_plugin_manager
from termlm.decoding.speed import STRATEGIES, format_row, measure
from termlm.decoding.testing import TinyRNN, char_tokenizer


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("onnx")
    return write_models(tmp_path_factory.mktemp("speed-models"))


def test_measure_gives_a_row_per_length_and_strategy() -> None:
    tok = char_tokenizer("abcdefgh ")
    model = TinyRNN(tok.vocab_size, hidden=8, seed=2, context=32)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    rows = list(
        measure(model, tok, list(STRATEGIES), [12, 6], registry=registry, repeat=1, clock="wall")
    )
    assert [(r.n, r.strategy) for r in rows] == [(n, s) for n in (6, 12) for s in STRATEGIES]
    for row in rows:
        assert row.loop_tokens_per_s > 0 and row.model_tokens_per_s > 0
        # one repeat: its pair is the whole figure
        assert row.ratio == pytest.approx(row.loop_tokens_per_s / row.model_tokens_per_s)
        assert 0 < row.in_loop_model_share <= 1
        assert format_row(row).split()[0] == row.strategy
    assert all(r.vs_first_n == 1.0 for r in rows if r.n == 6)


def test_the_ratio_is_the_median_of_each_repeats_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine faster or slower for a repeat moves both of its runs, not their ratio."""
    import termlm.decoding.speed as speed

    model_times = iter([1.0, 0.5, 0.6])  # seconds of the model runs, one a repeat
    # the loop runs: the warm-up, then the first repeat's twice (untimed, timed), then one each
    loop_times = iter([9.0, 2.0, 2.0, 1.0, 2.4])
    monkeypatch.setattr(speed, "model_seconds", lambda *a, **k: next(model_times))
    monkeypatch.setattr(speed, "loop_seconds", lambda *a, **k: (next(loop_times), 0.5))
    tok = char_tokenizer("ab")
    model = TinyRNN(tok.vocab_size, hidden=4, seed=2, context=8)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    (row,) = speed.measure(model, tok, ["greedy"], [10], registry=registry, repeat=3)
    assert row.ratio == pytest.approx(0.5)  # the pairs: 1 / 2, 0.5 / 1, 0.6 / 2.4
    assert row.loop_tokens_per_s / row.model_tokens_per_s == pytest.approx(0.3)  # the medians'
    assert row.loop_tokens_per_s == pytest.approx(10 / 2.0)


@pytest.mark.parametrize("kind", ["rnn", "memory", "window"])
def test_cli_prints_the_table_as_json(
    kind: str, models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(models[f"char-{kind}"])
    args = ("bench", path, "--strategies", "--lengths", "4,8", "--repeat", "1", "--json")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    report = json.loads(out)
    assert report["clock"] == "cpu" and report["threads"] == 1
    assert report["alternatives"] == 0 and report["live_beams"] is False
    assert [(r["n"], r["strategy"]) for r in report["rows"]] == [
        (n, s) for n in (4, 8) for s in STRATEGIES
    ]
    assert all(r["loop_tokens_per_s"] > 0 and r["ratio"] > 0 for r in report["rows"])


def test_cli_table_and_refusals(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(models["char-rnn"])
    code, out, err = run(capsys, "bench", path, "--strategies", "--lengths", "3", "--repeat", "1")
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["strategy", "n", "loop/s"]
    assert "load average" in err
    code, _, err = run(capsys, "bench", path, "--strategies", "--lengths", "3,x")
    assert code == 1 and "--lengths" in err and "Traceback" not in err
    code, _, err = run(capsys, "bench", path, "--strategies", "--threads", "2", "--clock", "cpu")
    assert code == 1 and "one thread" in err


def test_cli_chat_asks_for_what_the_chat_shows(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(models["char-rnn"])
    args = ("bench", path, "--strategies", "--chat", "--lengths", "5", "--repeat", "1", "--json")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    report = json.loads(out)
    assert report["alternatives"] == 5 and report["live_beams"] is True
    assert len(report["rows"]) == len(STRATEGIES)


def test_the_sampler_paths_benchmark_runs_and_checks_its_tokens() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "sampler_paths.py"),
            "-n",
            "60",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[3:9]] == [
        "exact",
        "scores",
        "logits",
        "greedy",
        "floor",
        "model",
    ]
    assert [line.split(":")[0] for line in lines[9:13]] == [
        "scores/exact",
        "logits/scores",
        "logits/exact",
        "logits/floor",
    ]


def test_vs_n0_compares_the_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine twice as slow for the longer length: loop/s halves, the pairs do not."""
    import termlm.decoding.speed as speed

    model_times = iter([1.0, 4.0])  # n = 10, then n = 20 on a machine twice as slow
    loop_times = iter([9.0, 2.0, 2.0, 8.0, 8.0])  # warm-up; n = 10 (untimed, timed); n = 20
    monkeypatch.setattr(speed, "model_seconds", lambda *a, **k: next(model_times))
    monkeypatch.setattr(speed, "loop_seconds", lambda *a, **k: (next(loop_times), 0.5))
    tok = char_tokenizer("ab")
    model = TinyRNN(tok.vocab_size, hidden=4, seed=2, context=8)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    first, second = speed.measure(model, tok, ["greedy"], [10, 20], registry=registry, repeat=1)
    assert second.loop_tokens_per_s / first.loop_tokens_per_s == pytest.approx(0.5)
    assert first.ratio == second.ratio == pytest.approx(0.5)
    assert second.vs_first_n == pytest.approx(1.0)
