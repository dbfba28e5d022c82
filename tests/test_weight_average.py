"""The weight average (--ema): its update, the swap, its state, and a run that keeps it (a resumed
run with an average: tests/test_training.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from termlm.errors import ConfigError  # noqa: E402
from termlm.training.averaging import WeightAverage, averaged  # noqa: E402
from termlm.training.checkpoint import load_weights  # noqa: E402
from termlm.training.evaluation import evaluate  # noqa: E402
from termlm.training.loop import train  # noqa: E402
from termlm.training.models import build_model  # noqa: E402
from termlm.training.options import build_options  # noqa: E402
from termlm.training.prepare import prepare  # noqa: E402

SMALL: dict[str, Any] = {"embed": 16, "hidden": 32, "layers": 1, "context": 16, "batch_size": 8}


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    text = (
        "the king is dead and the queen is sad and the prince is away from the court\n"
        "the knight rode to the castle and the lady waited by the gate for him\n"
    ) * 30
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_average_follows_the_weights_at_the_documented_rate() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    average = WeightAverage([p], 0.9)
    expected = torch.zeros(3)
    for step in range(100):
        with torch.no_grad():
            p.add_(1.0)
        decay = min(0.9, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * p.detach()
        average.update()
    assert torch.allclose(average.average[0], expected, atol=1e-5)
    assert average.steps == 100
    assert average.rate() == 0.9  # the warm-up is over


def test_applied_swaps_the_average_in_and_the_exact_weights_back() -> None:
    p = torch.nn.Parameter(torch.randn(4, 5))
    average = WeightAverage([p], 0.99)
    with torch.no_grad():
        p.add_(torch.randn(4, 5))
    average.update()
    raw, mean = p.detach().clone(), average.average[0].clone()
    with average.applied():
        assert torch.equal(p.detach(), mean)
    assert torch.equal(p.detach(), raw)
    with pytest.raises(RuntimeError), averaged(average):
        raise RuntimeError("a validation that fails")
    assert torch.equal(p.detach(), raw)  # given back all the same
    with averaged(None):
        assert torch.equal(p.detach(), raw)


def test_the_average_round_trips_and_refuses_another_model() -> None:
    p = torch.nn.Parameter(torch.randn(3))
    average = WeightAverage([p], 0.5)
    average.update()
    tensors = average.state_tensors()
    again = WeightAverage([torch.nn.Parameter(torch.zeros(3))], 0.5)
    again.load_state_tensors(tensors)
    assert again.steps == 1 and torch.equal(again.average[0], average.average[0])
    other = WeightAverage([torch.nn.Parameter(torch.zeros(4))], 0.5)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_tensors(tensors)
    two = WeightAverage([torch.nn.Parameter(torch.zeros(3))] * 2, 0.5)
    with pytest.raises(ValueError, match="number of parameters"):
        two.load_state_tensors(tensors)
    old = WeightAverage([p], 0.5)  # a checkpoint from before --ema: start at the weights
    old.load_state_tensors({"opt.step": torch.tensor(3)})
    assert torch.equal(old.average[0], p.detach()) and old.steps == 0


def test_off_unless_asked_for_and_bad_values(corpus: Path) -> None:
    def ema(**kw: object) -> float:
        return build_options(corpus=str(corpus), **{"level": None, "arch": None, **kw}).ema  # type: ignore[arg-type]

    assert ema(level="word") == 0.0
    assert ema(level="char") == 0.0
    assert ema(level="word", arch="gru", ema=0.999) == 0.999
    assert build_options(corpus=None, level=None, arch=None, recipe="tutorial").ema == 0.0
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match="--ema"):
            ema(level="word", ema=bad)


def test_a_run_keeps_validates_and_exports_the_average(corpus: Path, tmp_path: Path) -> None:
    options = build_options(
        corpus=str(corpus),
        level="word",
        arch="lstm",
        max_steps=30,
        eval_every=10,
        out=str(tmp_path),
        name="avg",
        ema=0.9,
        **SMALL,
    )
    result = train(options, show_progress=False)
    run_dir = tmp_path / "avg"
    prepared = prepare(options, resume_dir=run_dir, writes_files=False)
    model = build_model(prepared.model_config)
    load_weights(model, run_dir / "best.safetensors")
    # the best checkpoint holds the weights that were validated: the average
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best_line = min((r for r in lines if "val_loss" in r), key=lambda r: r["val_loss"])
    assert evaluate(model, prepared, torch.device("cpu")).loss == pytest.approx(
        best_line["val_loss"], abs=1e-6
    )
    assert result["val_loss"] == pytest.approx(best_line["val_loss"], abs=1e-6)
    raw = build_model(prepared.model_config)
    load_weights(raw, run_dir / "last.safetensors")  # training goes on from the raw weights
    differs = any(
        not torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), raw.state_dict().values(), strict=True)
    )
    assert differs
