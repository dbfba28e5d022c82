"""Model files of unknown or huge size, links that loop, and metadata that lies about the graph."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from termlm.cli.app import main
from termlm.errors import ModelFileError
from termlm.modelfile import MAX_CONTEXT, read_model_meta
from termlm.modelpath import MAX_MODEL_BYTES
from termlm.runtime.onnx_model import load_model
from termlm.runtime.registry import find_models

onnx = pytest.importorskip("onnx")

from tiny_onnx import VOCAB, build_tiny_model, tiny_meta, write_tiny_model  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello fox.\n" * 4


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """In a child process with a deadline: a reader that blocks fails the test, not the suite."""
    return subprocess.run(
        [sys.executable, "-m", "termlm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


# --------------------------------------------------------------------------- unknown size


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    for read in (read_model_meta, load_model):
        with pytest.raises(ModelFileError, match="not a regular file") as info:
            read(fifo)
        assert "empty" not in str(info.value)
    done = run_cli("generate", str(fifo), "-p", "a", "-n", "2", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "not a regular file" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
@pytest.mark.parametrize("command", ["generate", "eval", "bench", "chat"])
def test_dev_zero_is_refused_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    extra = {"generate": ["-p", "a", "-n", "2"], "eval": [str(corpus)]}.get(command, [])
    code, out, err = cli(capsys, command, "/dev/zero", *extra)
    assert code == 1 and out == ""
    assert "not a regular file" in err and "empty" not in err


def test_a_huge_sparse_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.onnx"
    with path.open("wb") as handle:  # sparse: no disk space is used
        handle.truncate(MAX_MODEL_BYTES + 1)
    for read in (read_model_meta, load_model):
        with pytest.raises(ModelFileError) as info:
            read(path)
        assert "over the 1 GB" in info.value.message and "not read" in info.value.message


def test_a_file_at_the_limit_still_gets_its_own_refusal(tmp_path: Path) -> None:
    """The size check is the only new one: a normal broken file says what is wrong with it."""
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x08" * 100)
    with pytest.raises(ModelFileError, match="not an ONNX model"):
        load_model(path)


# --------------------------------------------------------------------------- links in a models folder


@pytest.fixture
def folder_with_bad_links(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "loop.onnx").symlink_to("loop.onnx")
    (folder / "a.onnx").symlink_to("b.onnx")
    (folder / "b.onnx").symlink_to("a.onnx")
    (folder / "dangling.onnx").symlink_to("nowhere.onnx")
    write_tiny_model(folder / "good.onnx", "rnn")
    return folder


def test_a_symlink_loop_is_listed_as_unusable(folder_with_bad_links: Path) -> None:
    entries = {e.name: e for e in find_models([("env", folder_with_bad_links)])}
    assert set(entries) == {"loop", "a", "b", "dangling", "good"}
    for name in ("loop", "a", "b"):
        assert entries[name].error == "cannot be read (a symbolic link that loops)"
    assert entries["dangling"].error is not None
    assert entries["good"].error is None and entries["good"].is_default


def test_generate_and_models_go_on_past_a_symlink_loop(
    capsys: pytest.CaptureFixture[str],
    folder_with_bad_links: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(folder_with_bad_links))
    code, out, err = cli(capsys, "models", "--json")
    assert code == 0 and "Traceback" not in err
    assert "symbolic link that loops" in out
    code, out, err = cli(capsys, "generate", "loop", "-p", "a")
    assert code == 1 and "symbolic link that loops" in err
    code, out, err = cli(capsys, "generate", str(folder_with_bad_links / "loop.onnx"))
    assert code == 1 and "symbolic link that loops" in err
    code, out, err = cli(capsys, "chat", "loop")
    assert code == 1 and "symbolic link that loops" in err


def test_a_broken_file_named_like_the_default_is_not_passed_over_silently(
    capsys: pytest.CaptureFixture[str],
    folder_with_bad_links: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loop named like the default model hides the bundled one; using another model in its
    place without a word would answer with a model the person did not ask for."""
    (folder_with_bad_links / "shakespeare-char.onnx").symlink_to("shakespeare-char.onnx")
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(folder_with_bad_links))
    for command in (["generate", "-p", "a", "-n", "3"], ["chat"]):
        code, out, err = cli(capsys, *command)
        assert code == 1 and "Traceback" not in err, command
        assert "the default model 'shakespeare-char'" in err and "symbolic link that loops" in err
        assert "fix or remove that file" in err and out == ""


# --------------------------------------------------------------------------- a huge context


def test_a_huge_declared_context_is_refused(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.onnx", meta=tiny_meta("rnn", context=10**12))
    with pytest.raises(ModelFileError, match="'context' must be between 1 and 1,048,576"):
        load_model(path)


def test_bench_on_a_huge_declared_context(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A context of 10**12 is refused in a line; 2**16 (large, allowed) is measured."""
    huge = write_tiny_model(tmp_path / "huge.onnx", meta=tiny_meta("rnn", context=10**12))
    code, out, err = cli(capsys, "bench", str(huge), "--tokens", "2")
    assert code == 1 and "'context' must be between" in err and "Traceback" not in err
    large = write_tiny_model(tmp_path / "large.onnx", meta=tiny_meta("rnn", context=2**16))
    assert MAX_CONTEXT >= 2**16
    code, out, err = cli(capsys, "bench", str(large), "--tokens", "2", "--json")
    assert code == 0, err
    assert '"window_tokens_per_s"' in out


# --------------------------------------------------------------------------- a vocabulary that lies


@pytest.mark.parametrize("claimed", [VOCAB - 2, VOCAB + 3])
def test_metadata_vocabulary_against_a_static_graph(tmp_path: Path, claimed: int) -> None:
    meta = tiny_meta("rnn", config={**tiny_meta("rnn")["config"], "vocab_size": claimed})
    path = write_tiny_model(tmp_path / "m.onnx", meta=meta)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert f"says {claimed} tokens but its graph gives scores for {VOCAB}" in info.value.message


def make_logits_symbolic(model: Any) -> Any:
    """The logits' last axis made unknowable from the graph (a reshape to a computed shape)."""
    from onnx import helper

    last = model.graph.node[-1]
    assert last.output[0] == "logits"
    last.output[0] = "logits_raw"
    model.graph.node.extend(
        [
            helper.make_node("Shape", ["logits_raw"], ["logits_shape"]),
            helper.make_node("Reshape", ["logits_raw", "logits_shape"], ["logits"]),
        ]
    )
    dim = model.graph.output[0].type.tensor_type.shape.dim[2]
    dim.ClearField("dim_value")
    dim.dim_param = "vocab"
    return model


def _symbolic_logits(vocab_claim: int) -> bytes:
    """A model whose logits' last axis is symbolic: only a step can tell its size."""
    meta = tiny_meta("memory", config={**tiny_meta("memory")["config"], "vocab_size": vocab_claim})
    return make_logits_symbolic(build_tiny_model("memory", meta=meta)).SerializeToString()


def test_metadata_vocabulary_against_the_first_step(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(_symbolic_logits(VOCAB - 4))
    model = load_model(path)  # the graph cannot tell
    with pytest.raises(ModelFileError) as info:
        model.step(np.array([[2]]), model.initial_state(1))
    assert f"says {VOCAB - 4} tokens but its graph gives scores for {VOCAB}" in str(info.value)
    assert str(path) in info.value.message
    good = tmp_path / "good.onnx"
    good.write_bytes(_symbolic_logits(VOCAB))
    ok = load_model(good)
    assert ok.step(np.array([[2]]), ok.initial_state(1)).logits.shape == (1, 1, VOCAB)


def test_eval_refuses_a_lying_vocabulary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", TEXT)
    real = tokenizer.vocab_size
    smaller = fit_tokenizer("char", TEXT[: TEXT.index("z")])  # fewer characters: a smaller vocab
    assert smaller.vocab_size < real
    meta = tiny_meta(
        "memory", config={**tiny_meta("memory")["config"], "vocab_size": smaller.vocab_size}
    )
    meta["tokenizer"] = smaller.to_json()
    model = make_logits_symbolic(build_tiny_model("memory", vocab=real, meta=meta))
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT[: TEXT.index("z")])
    code, out, err = cli(capsys, "eval", str(path), str(corpus), "--split", "all")
    assert code == 1 and out == "", out
    assert "its graph gives scores for" in err and "Traceback" not in err


@pytest.mark.parametrize("shape", [[1, "batch", 10**10], [2] * 9 + ["batch"]])
def test_an_absurd_state_is_refused_before_any_array(tmp_path: Path, shape: list[Any]) -> None:
    state = [
        {
            "name": "h",
            "shape": shape,
            "batch_axis": len(shape) - 1 if shape[-1] == "batch" else 1,
            "time_axis": None,
        }
    ]
    path = write_tiny_model(tmp_path / "m.onnx", meta=tiny_meta("rnn", state=state))
    with pytest.raises(ModelFileError, match="a state has at most 8 dimensions"):
        read_model_meta(path)
