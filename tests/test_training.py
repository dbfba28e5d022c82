"""Training: the tutorial recipe, the stream recipe for every architecture, resume, guards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from termlm.errors import ConfigError, CorpusError, RunError  # noqa: E402
from termlm.training.loop import TrainingDiverged, TrainingInterrupted, train  # noqa: E402
from termlm.training.options import build_options  # noqa: E402

SMALL = {"embed": 16, "hidden": 32, "layers": 1, "context": 32, "batch_size": 8}


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    lines = [
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
        "All:\nSpeak, speak.\n\n",
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n",
    ]
    path = tmp_path / "corpus.txt"
    path.write_text("".join(lines) * 12, encoding="utf-8")
    return path


def test_tutorial_recipe_reproduces_the_tutorial(tmp_path: Path) -> None:
    options = build_options(
        corpus=None, level=None, arch=None, recipe="tutorial", out=str(tmp_path), seed=1
    )
    result = train(options, show_progress=False)
    assert result["train_accuracy"] == 1.0
    assert result["sample"].startswith("to be or not to be that is the question")
    assert len(result["sample"].split()) == 14  # the four prompt words and ten more
    assert result["params"] > 0


@pytest.mark.parametrize(
    ("arch", "bidirectional"),
    [
        ("rnn", False),
        ("lstm", False),
        ("gru", False),
        ("attention", False),
        ("transformer", False),
        ("gru", True),
    ],
)
def test_every_architecture_learns(
    corpus: Path, tmp_path: Path, arch: str, bidirectional: bool
) -> None:
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch=arch,
        bidirectional=bidirectional,
        max_steps=40,
        out=str(tmp_path),
        name=arch,
        lr=1e-2,
        heads=2,
        **SMALL,
    )
    result = train(options, show_progress=False)
    run = Path(result["run_dir"])
    for name in (
        "config.json",
        "tokenizer.json",
        "best.safetensors",
        "last.safetensors",
        "metrics.jsonl",
        "result.json",
    ):
        assert (run / name).exists(), name
    vocab = json.loads((run / "config.json").read_text())["model"]["vocab_size"]
    import math

    assert result["val_loss"] < math.log(vocab) - 0.5  # well below a uniform guess
    assert result["val_bpc"] is not None and result["val_bpc"] > 0
    assert not list(run.glob("*.tmp"))


def test_same_seed_same_result(corpus: Path, tmp_path: Path) -> None:
    results = [
        train(
            build_options(
                corpus=str(corpus),
                level="char",
                arch="lstm",
                max_steps=15,
                out=str(tmp_path),
                name=f"s{i}",
                **SMALL,
            ),
            show_progress=False,
        )
        for i in range(2)
    ]
    assert results[0]["val_loss"] == results[1]["val_loss"]


@pytest.mark.parametrize("ema", [0.0, 0.9])  # with a weight average, it is in the checkpoint too
def test_interrupted_and_resumed_run_ends_where_an_uninterrupted_one_does(
    corpus: Path, tmp_path: Path, ema: float
) -> None:
    common = {
        "corpus": str(corpus),
        "level": "char",
        "arch": "gru",
        "epochs": 3.0,
        "out": str(tmp_path),
        "dropout": 0.1,
        "ema": ema,
        **SMALL,
    }
    straight = train(build_options(**common, name="straight"), show_progress=False)
    with pytest.raises(TrainingInterrupted) as info:
        train(build_options(**common, name="stopped", stop_after_steps=7), show_progress=False)
    run_dir = info.value.run_dir
    assert (run_dir / "last.safetensors").exists()
    resumed = train(
        build_options(corpus=None, level=None, arch=None), show_progress=False, resume=str(run_dir)
    )
    assert resumed["steps"] == straight["steps"]
    assert resumed["val_loss"] == pytest.approx(straight["val_loss"], abs=1e-6)


def test_resume_refuses_missing_run_and_other_architecture(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError):
        train(
            build_options(corpus=None, level=None, arch=None),
            show_progress=False,
            resume=str(tmp_path / "nope"),
        )
    with pytest.raises(TrainingInterrupted) as info:
        train(
            build_options(
                corpus=str(corpus),
                level="char",
                arch="lstm",
                max_steps=20,
                stop_after_steps=2,
                out=str(tmp_path),
                **SMALL,
            ),
            show_progress=False,
        )
    with pytest.raises(RunError, match="lstm"):
        train(
            build_options(corpus=None, level=None, arch=None),
            show_progress=False,
            resume=str(info.value.run_dir),
            resume_arch="gru",
        )


def test_divergence_guard_stops_with_advice(corpus: Path, tmp_path: Path) -> None:
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="rnn",
        max_steps=200,
        lr=1e4,
        clip=0.0,
        out=str(tmp_path),
        **SMALL,
    )
    with pytest.raises(TrainingDiverged, match="--lr"):
        train(options, show_progress=False)


def test_bad_options_are_refused(corpus: Path) -> None:
    with pytest.raises(ConfigError, match="val-fraction"):
        build_options(corpus=str(corpus), level="char", arch="lstm", val_fraction=1.5)
    with pytest.raises(ConfigError, match="bidirectional"):
        build_options(corpus=str(corpus), level="char", arch="transformer", bidirectional=True)
    with pytest.raises(ConfigError, match="architecture"):
        build_options(corpus=str(corpus), level="char", arch="mamba")
    with pytest.raises(ConfigError, match="level"):
        build_options(corpus=str(corpus), level="byte", arch="lstm")
    with pytest.raises(ConfigError, match="hidden"):
        build_options(corpus=str(corpus), level="char", arch="lstm", hidden=0)


def test_too_short_corpus_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij", encoding="utf-8")
    with pytest.raises(CorpusError, match="validation"):
        train(
            build_options(corpus=str(short), level="char", arch="lstm", out=str(tmp_path)),
            show_progress=False,
        )


def test_two_processes_hold_the_same_weights(corpus: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "termlm",
        "train",
        str(corpus),
        "--level",
        "char",
        "--arch",
        "lstm",
        "--max-steps",
        "12",
        "--hidden",
        "32",
        "--embed",
        "16",
        "--context",
        "32",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
        "--name",
        "ddp",
        "--quiet",
        "--json",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    # the ranks' own errors come first, the launcher's summary last
    assert done.returncode == 0, f"{done.stderr[:3000]}\n…\n{done.stderr[-1000:]}"
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert result["world_size"] == 2
    assert result["ranks_in_sync"] is True


def test_cli_tutorial_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "termlm",
            "train",
            "--recipe",
            "tutorial",
            "--json",
            "--quiet",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["train_accuracy"] == 1.0
    assert result["sample"].startswith("to be or not to be that is the question")
