"""A run folder whose config.json was edited to absurd sizes or types: `termlm export` (and
`bench --run`) refuse it naming the file and the field, before building anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("onnx")

from termlm.cli.app import main
from termlm.config import MAX_WEIGHTS, ModelConfig, check_limits, config_from_file
from termlm.errors import ConfigError, RunError

TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello fox.\n" * 20
TINY = ["--embed", "8", "--hidden", "16", "--context", "16", "--batch-size", "4", "--threads", "1"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from termlm.training.loop import train
    from termlm.training.options import build_options

    folder = tmp_path_factory.mktemp("run")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT)
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="lstm",
        embed=8,
        hidden=16,
        context=16,
        batch_size=4,
        max_steps=2,
        threads=1,
        out=str(folder / "runs"),
        name="r",
    )
    train(options, show_progress=False)
    return folder / "runs" / "r"


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("hidden", 10**12, "model.hidden must be at most 65,536, got 1,000,000,000,000"),
        ("context", 10**12, "model.context must be at most 65,536"),
        ("vocab_size", 10**12, "model.vocab_size must be at most 16,777,216"),
        ("layers", 10**6, "model.layers must be at most 256"),
        ("hidden", 60000, "those sizes make a model of about"),
        ("hidden", "big", "model.hidden must be a whole number, got 'big'"),
        ("layers", True, "model.layers must be a whole number, got True"),
        ("dropout", float("nan"), "model.dropout must be a number, got nan"),
        ("tie", "yes", "model.tie must be true or false"),
        ("hidden", -5, "model.hidden must be a positive integer, got -5"),
        ("vocab_size", 0, "model.vocab_size must be positive, got 0"),
        ("arch", "mamba", "unknown architecture 'mamba'"),
    ],
)
def test_export_refuses_an_edited_config(
    trained: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: Any,
    needle: str,
) -> None:
    run_dir = tmp_path / "edited"
    shutil.copytree(trained, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["model"][field] = value
    (run_dir / "config.json").write_text(json.dumps(config))
    out_file = tmp_path / "m.onnx"
    code, out, err = run(capsys, "export", str(run_dir), "--out", str(out_file))
    assert code == 1 and out == "" and "Traceback" not in err, err
    first, hint = err.splitlines()
    assert first.startswith(f"error: {str(run_dir / 'config.json')!r}: ") and needle in first, err
    assert hint == "the file was edited or damaged; train the run again"
    assert not out_file.exists()


def test_the_unedited_run_exports(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "export", str(trained), "--out", str(tmp_path / "m.onnx"))
    assert code == 0, err


def test_a_model_section_that_is_not_an_object(trained: Path, tmp_path: Path) -> None:
    from termlm.export.run_loader import load_run

    run_dir = tmp_path / "edited"
    shutil.copytree(trained, run_dir)
    (run_dir / "config.json").write_text(json.dumps({"model": [1, 2]}))
    with pytest.raises(RunError, match="has no 'model' section"):
        load_run(run_dir)


def test_training_refuses_the_same_sizes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    code, _, err = run(
        capsys, "train", str(corpus), "--hidden", str(10**12), "--out", str(tmp_path / "r")
    )
    assert code == 1 and err.startswith("error: --hidden must be at most 65,536"), err
    assert not (tmp_path / "r").exists()


sizes = st.integers(min_value=1, max_value=1 << 17)


@settings(max_examples=200, deadline=None)
@given(
    arch=st.sampled_from(["rnn", "lstm", "gru", "attention", "transformer"]),
    vocab=st.integers(min_value=1, max_value=1 << 25),
    context=sizes,
    embed=sizes,
    hidden=sizes,
    layers=st.integers(min_value=1, max_value=300),
)
def test_config_from_file_accepts_or_refuses_with_a_named_field(
    arch: str, vocab: int, context: int, embed: int, hidden: int, layers: int
) -> None:
    raw = {
        "arch": arch,
        "vocab_size": vocab,
        "context": context,
        "embed": embed,
        "hidden": hidden,
        "layers": layers,
        "heads": 1,
    }
    try:
        config = config_from_file(raw)
    except ConfigError as exc:
        assert exc.message.startswith("model.") or "weights, over the" in exc.message
        return
    check_limits(config)  # what is accepted is within every limit
    assert isinstance(config, ModelConfig) and MAX_WEIGHTS >= 0
