"""`termlm generate`, `eval`, `models` and `bench` as a user runs them."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from termlm.cli.app import main

pytest.importorskip("onnx")

from tiny_onnx import write_tiny_model

ROOT = Path(__file__).resolve().parents[1]
TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello fox.\n" * 4


def interruptible() -> None:
    """In the child: Ctrl-C raises KeyboardInterrupt even when this test run was started in the
    background, where the shell makes children ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", TEXT)
    folder = tmp_path_factory.mktemp("models")
    for kind in ("rnn", "memory", "window"):
        write_tiny_model(
            folder / f"{kind}.onnx", kind, vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json()
        )
    return folder


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT * 3, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def generate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run(capsys, "generate", *args, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


# --------------------------------------------------------------------------- generate


def test_generate_streams_text(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "generate", str(model_dir / "rnn.onnx"), "-p", "the ", "-n", "12", "--seed", "3"
    )
    assert code == 0, err
    assert out.endswith("\n") and len(out) > 1
    again = run(
        capsys, "generate", str(model_dir / "rnn.onnx"), "-p", "the ", "-n", "12", "--seed", "3"
    )
    assert again[1] == out  # same seed, same text


@pytest.mark.parametrize("kind", ["rnn", "memory", "window"])
def test_generate_json(model_dir: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    result = generate_json(capsys, str(model_dir / f"{kind}.onnx"), "-p", "hello", "-n", "9")
    assert result["stop_reason"] == "length"
    assert len(result["tokens"]) == len(result["logprobs"]) == 9
    assert all(lp <= 0 for lp in result["logprobs"])
    assert result["seconds"] >= 0 and result["prompt_tokens"] == 5
    assert isinstance(result["text"], str)


def test_generate_says_when_a_window_model_rereads(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "generate", str(model_dir / "window.onnx"), "-p", "hi", "-n", "3")
    assert code == 0 and "re-reads its" in err
    code, _, err = run(capsys, "generate", str(model_dir / "rnn.onnx"), "-p", "hi", "-n", "3")
    assert code == 0 and "re-reads" not in err


def test_generate_reads_stdin(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello world"))
    result = generate_json(capsys, str(model_dir / "rnn.onnx"), "-p", "-", "-n", "3")
    assert result["prompt_tokens"] == len("hello world")


def test_generate_truncates_a_long_prompt(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "generate", str(model_dir / "memory.onnx"), "-p", "fox " * 10, "-n", "2", "--json"
    )
    assert code == 0
    assert "keeping the last 16" in err
    result = json.loads(out)
    assert result["prompt_tokens"] == 16 and result["prompt_truncated"] == 24


def test_generate_greedy_and_beam(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(model_dir / "rnn.onnx")
    greedy = generate_json(capsys, path, "-p", "the", "-n", "6", "--decoder", "greedy")
    assert greedy == {**greedy, "stop_reason": "length"}
    assert (
        generate_json(capsys, path, "-p", "the", "-n", "6", "--decoder", "greedy")["text"]
        == (greedy["text"])
    )
    beam = generate_json(capsys, path, "-p", "the", "-n", "6", "--decoder", "beam")
    assert beam["n_best"] and beam["n_best"][0]["text"] == beam["text"]


def test_generate_stop_string(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(model_dir / "rnn.onnx")
    free = generate_json(capsys, path, "-p", "the", "-n", "30", "--decoder", "greedy")
    stop = free["text"][3:5]
    cut = generate_json(
        capsys, path, "-p", "the", "-n", "30", "--decoder", "greedy", "--stop", stop
    )
    assert cut["stop_reason"] == "stop"
    assert stop not in cut["text"] and free["text"].startswith(cut["text"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "temperature"], "KEY=VALUE"),
        (["--set", "no_such_option=1"], "no_such_option"),
        (["--decoder", "no-such-decoder"], "no-such-decoder"),
        (["-n", "-1"], "-n must be"),
    ],
)
def test_generate_refusals(
    model_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, "generate", str(model_dir / "rnn.onnx"), "-p", "a", *args)
    assert out == ""
    assert code == 1
    assert err.startswith("error:") and message in err


def test_generate_unknown_model(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(model_dir))
    code, _, err = run(capsys, "generate", "no-such-model", "-p", "a")
    assert code == 1 and "no model named 'no-such-model'" in err and "rnn" in err
    code, out, _ = run(capsys, "generate", "memory", "-p", "a", "-n", "2", "--json")
    assert code == 0 and json.loads(out)["model"] == "tiny-memory"


# A processor that leaves the scores as they are and, at its second call, creates a file: the
# evidence that generation has started (waited for instead of sleeping).
STARTED_PLUGIN = """
import os
from typing import ClassVar

from termlm.decoding import hookimpl


class Started:
    name: ClassVar[str] = "started-marker"
    description: ClassVar[str] = "Create a file at the first step."
    options: ClassVar[tuple] = ()

    def __init__(self) -> None:
        self.active = True
        self.calls = 0

    def process(self, logits, history, info):
        self.calls += 1
        if self.calls == 2:  # the first token is out
            open(os.environ["TERMLM_TEST_STARTED"], "w").close()
        return logits.copy()


@hookimpl
def register_plugins(register):
    register(Started)
"""


def wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 120.0) -> None:
    """Wait until ``path`` exists (the child has started generating); fail if the child ends."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_generate_ctrl_c_keeps_the_text(model_dir: Path, tmp_path: Path) -> None:
    """The first Ctrl-C stops generation cleanly; --json still prints what was made."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "started.py").write_text(STARTED_PLUGIN)
    marker = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERMLM_TEST_STARTED": str(marker)}
    command = [sys.executable, "-m", "termlm", "generate", str(model_dir / "rnn.onnx")]
    proc = subprocess.Popen(
        [*command, "-p", "the", "-n", "100000000", "--json", "--plugins-dir", str(plugins)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        preexec_fn=interruptible,
    )
    wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["stop_reason"] == "cancelled"
    assert len(result["tokens"]) > 0 and len(result["tokens"]) == len(result["logprobs"])


# --------------------------------------------------------------------------- eval


def test_eval_json(model_dir: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termlm.runtime.evaluation import split_text
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.scoring import evaluate_ids

    code, out, err = run(capsys, "eval", str(model_dir / "rnn.onnx"), str(corpus), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {"loss", "ppl", "bpc", "tokens"} <= set(result)
    model = load_model(model_dir / "rnn.onnx")
    val = split_text(corpus.read_text(encoding="utf-8"), 0.1)[1]
    expected = evaluate_ids(model, model.tokenizer.encode(val), chars=len(val), batch=1)
    assert result["loss"] == pytest.approx(expected.loss, abs=1e-6)
    assert result["tokens"] == len(val) - 1


def test_eval_interleaved_split_is_the_trainers(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.scoring import evaluate_ids
    from termlm.training.split import split_for_validation

    corpus = tmp_path / "long.txt"
    corpus.write_text(
        TEXT * 120, encoding="utf-8"
    )  # about 33 KB: blocks of 8 KB, every 2nd held out
    text = corpus.read_text(encoding="utf-8")
    val = split_for_validation(text, 0.5, "interleaved")[1]  # exactly what training holds out
    assert val != text[len(text) - len(val) :]  # not the tail
    args = ["eval", str(model_dir / "rnn.onnx"), str(corpus), "--val-fraction", "0.5"]
    code, out, err = run(capsys, *args, "--val-split", "interleaved", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["val_split"] == "interleaved" and result["val_fraction"] == 0.5
    model = load_model(model_dir / "rnn.onnx")
    expected = evaluate_ids(model, model.tokenizer.encode(val), chars=len(val), batch=1)
    assert result["loss"] == pytest.approx(expected.loss, abs=1e-6)
    assert result["chars"] == len(val)
    code, out, _ = run(capsys, *args, "--val-split", "interleaved")
    assert code == 0 and "on val, every 2nd block of about 8 KB" in out
    code, out, _ = run(capsys, *args)  # the model records no split: the tail
    assert code == 0 and "on val, the last 50%" in out
    code, _, err = run(capsys, *args, "--val-split", "middle")
    assert code == 1 and "--val-split must be tail or interleaved" in err


def test_eval_all_and_text(
    model_dir: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "eval", str(model_dir / "window.onnx"), str(corpus), "--split", "all"
    )
    assert code == 0
    assert "loss" in out and "ppl" in out and "bpc" in out


def test_eval_refusals(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("the fox", encoding="utf-8")
    code, _, err = run(capsys, "eval", str(model_dir / "rnn.onnx"), str(tiny))
    assert code == 1 and "at least 2" in err
    code, _, err = run(capsys, "eval", str(model_dir / "rnn.onnx"), str(tmp_path / "none.txt"))
    assert code == 1 and "corpus not found" in err
    code, _, err = run(capsys, "eval", str(model_dir / "rnn.onnx"), str(tiny), "--split", "test")
    assert code == 1 and "--split" in err


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["lstm", "gru-bi"])
def test_eval_reproduces_the_trainers_val_loss(tmp_path: Path, arch: str) -> None:
    """Train a few steps, export, evaluate: `termlm eval` gives the run's val_loss."""
    pytest.importorskip("torch")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 20, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def termlm(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "termlm", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    flags = ["--arch", arch.removesuffix("-bi")] + (["--bidirectional"] if "-bi" in arch else [])
    train = termlm(
        "train", str(corpus), *flags, "--context", "24", "--embed", "8", "--hidden", "16",
        "--layers", "1", "--max-steps", "8", "--out", "runs", "--name", "run", "-q", "--json",
    )  # fmt: skip
    val_loss = json.loads(train.strip().splitlines()[-1])["val_loss"]
    termlm("export", "runs/run", "-o", "run.onnx")
    result = json.loads(termlm("eval", "run.onnx", str(corpus), "--json"))
    assert result["loss"] == pytest.approx(val_loss, abs=1e-3)


@pytest.mark.slow
def test_eval_reads_the_models_own_interleaved_split(tmp_path: Path) -> None:
    """A run trained with --val-split interleaved: `termlm eval` on its export, with no split
    given, scores the blocks the run held out (its card says which) and gives the run's loss."""
    pytest.importorskip("torch")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 120, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def termlm(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "termlm", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    train = termlm(
        "train", str(corpus), "--arch", "gru", "--context", "24", "--embed", "8", "--hidden", "16",
        "--max-steps", "6", "--val-split", "interleaved", "--val-fraction", "0.5",
        "--out", "runs", "--name", "run", "-q", "--json",
    )  # fmt: skip
    val_loss = json.loads(train.strip().splitlines()[-1])["val_loss"]
    termlm("export", "runs/run", "-o", "run.onnx")
    result = json.loads(termlm("eval", "run.onnx", str(corpus), "--json"))
    assert (result["val_split"], result["val_fraction"]) == ("interleaved", 0.5)
    assert result["loss"] == pytest.approx(val_loss, abs=1e-3)


# --------------------------------------------------------------------------- models, bench


def test_models_lists_and_marks_the_default(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(model_dir))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert {"rnn", "memory", "window"} <= set(listed)
    assert listed["memory"]["arch"] == "attention" and listed["window"]["arch"] == "gru-bi"
    for entry in listed.values():
        assert {"name", "path", "arch", "level", "val_loss", "size_bytes", "default"} <= set(entry)
    assert sum(entry["default"] for entry in listed.values()) == 1
    code, out, _ = run(capsys, "models")
    assert code == 0 and "memory" in out and "attention" in out and "yes" in out


def test_bench_json(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "bench", str(model_dir / "rnn.onnx"), "--tokens", "20", "--json")
    assert code == 0, err
    report = json.loads(out)
    for key in (
        "tokens_per_s", "prefill_tokens_per_s", "batch4_step_ratio", "beam4_step_ratio",
        "window_tokens_per_s", "bytes_per_step", "bound_tokens_per_s",
    ):  # fmt: skip
        assert report[key] > 0, key
    assert report["torch_tokens_per_s"] is None
    assert report["bytes_per_step"] >= 4 * 8 * 8  # at least the recurrent matrices
