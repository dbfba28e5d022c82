"""Hostile input through the CLI: each case exits 1 with a short "error:" message and no traceback.

Most cases run in-process (`termlm.cli.app.main`, which is what the `termlm` script runs); a few
run as real subprocesses to prove the same of the installed entry point.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from termlm.cli.app import main

onnx = pytest.importorskip("onnx")

from tiny_onnx import build_tiny_model, tiny_meta, write_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello fox.\n" * 4
TINY_TRAIN = ["--embed", "8", "--hidden", "8", "--batch-size", "2", "--max-steps", "1", "-q"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, out: str, err: str, *needles: str, output: bool = False) -> None:
    """Exit 1, one or two lines on stderr starting with "error:"; nothing on stdout unless
    `output` (text streamed before a failure half-way stays on the screen)."""
    lines = [line for line in err.splitlines() if not line.startswith(("note:", "warning:"))]
    assert code == 1, err
    assert output or out == ""
    assert "Traceback" not in err
    assert lines and lines[0].startswith("error: ") and len(lines) <= 2, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", TEXT)
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    return write_tiny_model(path, "rnn", vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json())


# --------------------------------------------------------------------------- corpora


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: None, "corpus not found"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text(" \n\t \r\n"), "only white space"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "binary"),
    ],
    ids=["missing", "folder", "empty", "white-space", "binary"],
)
@pytest.mark.parametrize("command", ["train", "eval"])
def test_unusable_corpus(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    model_path: Path,
    make: Callable[[Path], Any],
    needle: str,
    command: str,
) -> None:
    corpus = tmp_path / "corpus.txt"
    make(corpus)
    args = ["train", str(corpus), *TINY_TRAIN] if command == "train" else ["eval"]
    if command == "eval":
        args += [str(model_path), str(corpus)]
    assert_refused(*run(capsys, *args), needle)


def test_non_utf8_corpus_is_read_with_a_note(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_path: Path
) -> None:
    corpus = tmp_path / "latin.txt"
    corpus.write_bytes(("the café, the crème brûlée; " * 20).encode("cp1252"))
    code, out, err = run(capsys, "eval", str(model_path), str(corpus), "--json")
    assert code == 0, err
    assert "not valid UTF-8" in err and "cp1252" in err
    assert json.loads(out)["tokens"] > 0


def test_corpus_too_short_for_a_validation_split(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corpus = tmp_path / "short.txt"
    corpus.write_text("abcdefghij", encoding="utf-8")
    code, out, err = run(capsys, "train", str(corpus), "--out", str(tmp_path), *TINY_TRAIN)
    assert_refused(code, out, err, "too short for a validation split", "--val-fraction")
    assert not any(tmp_path.glob("short-*")), "a refused run leaves no run folder"


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str]:
    """A run trained on a corpus shorter than the context (30 characters, context 64)."""
    folder = tmp_path_factory.mktemp("short")
    corpus = folder / "tiny.txt"
    corpus.write_text("to be or not to be, that is it\n" * 1, encoding="utf-8")
    args = ["train", str(corpus), "--arch", "lstm", "--context", "64", "--val-fraction", "0.3"]
    capture = io.StringIO()
    stderr, sys.stderr = sys.stderr, capture
    stdout, sys.stdout = sys.stdout, io.StringIO()
    try:
        main([*args, "--out", str(folder), *TINY_TRAIN, "--json"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        out = sys.stdout.getvalue()  # type: ignore[attr-defined]
        sys.stderr, sys.stdout = stderr, stdout
    return code, json.loads(out) if code == 0 else {}, capture.getvalue()


def test_corpus_shorter_than_the_context(short_run: tuple[int, dict[str, Any], str]) -> None:
    code, result, err = short_run
    assert code == 0, err
    assert "the context is cut from 64 to" in err
    config = json.loads((Path(result["run_dir"]) / "config.json").read_text())
    assert config["model"]["context"] < 64


# --------------------------------------------------------------------------- training options


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--context", "-3"], "--context must be a positive integer"),
        (["--context", "0"], "--context must be a positive integer"),
        (["--embed", "0"], "--embed must be a positive integer"),
        (["--hidden", "-1"], "--hidden must be a positive integer"),
        (["--layers", "0"], "--layers must be a positive integer"),
        (["--arch", "transformer", "--heads", "0"], "--heads must be a positive integer"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--lr", "0"], "--lr must be positive"),
        (["--lr", "-1e-3"], "--lr must be positive"),
        (["--epochs", "-1"], "--epochs must be positive"),
        (["--minutes", "0"], "--minutes must be positive"),
        (["--max-steps", "0"], "--max-steps must be positive"),
        (["--patience", "-1"], "--patience must be 0 (off) or more"),
        (["--threads", "0"], "--threads must be between 1 and"),
        (["--eval-every", "0"], "--eval-every must be positive"),
        (["--eval-seconds", "-2"], "--eval-seconds must be positive"),
        (["--eval-tokens", "-1"], "--eval-tokens must be 0 (all) or more"),
        (["--val-split", "random"], "unknown --val-split 'random'"),
        (["--warmup", "1.5"], "--warmup must be a fraction in [0, 1)"),
        (["--weight-decay", "-1"], "--weight-decay must be >= 0"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
        (["--clip", "-1"], "--clip must be >= 0"),
        (["--val-fraction", "0"], "--val-fraction must be between 0 and 1"),
        (["--val-fraction", "1"], "--val-fraction must be between 0 and 1"),
        (["--val-fraction", "-0.2"], "--val-fraction must be between 0 and 1"),
        (["--val-fraction", "1.5"], "--val-fraction must be between 0 and 1"),
        (["--arch", "mamba"], "unknown architecture 'mamba'"),
        (["--level", "byte"], "unknown level 'byte'"),
        (["--recipe", "soup"], "unknown recipe 'soup'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--arch", "transformer", "--bidirectional"], "--bidirectional works with rnn"),
        (["--level", "bpe", "--vocab-size", "0"], "--vocab-size must be at least"),
        (["--level", "word", "--max-vocab", "-5"], "--max-vocab must be at least"),
        (["--level", "word", "--punctuation", "eat"], "unknown punctuation mode 'eat'"),
        (["--resume", "no-such-run"], "no run folder at no-such-run"),
    ],
)
def test_bad_training_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], needle: str
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    common = [a for a in TINY_TRAIN if a not in ("--max-steps", "1")]
    code, out, err = run(capsys, "train", str(corpus), "--out", str(tmp_path), *common, *args)
    assert_refused(code, out, err, needle)
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.txt"], "nothing written"


def test_resume_of_another_architecture(
    capsys: pytest.CaptureFixture[str], short_run: tuple[int, dict[str, Any], str]
) -> None:
    _, result, _ = short_run
    code, out, err = run(capsys, "train", "--resume", result["run_dir"], "--arch", "gru", "-q")
    assert_refused(code, out, err, "that run trains a lstm, not a gru", "drop --arch")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["missing.txt"], "corpus not found"),
        (["CORPUS", "--archs", "lstm,mamba"], "unknown architecture 'mamba'"),
        (["CORPUS", "--archs", "lstm,transformer-bi"], "--bidirectional works with"),
        (["CORPUS", "--archs", ","], "--archs names no architecture"),
        (["CORPUS", "--params", "0"], "--params must be positive"),
        (["CORPUS", "--minutes", "-1"], "--minutes must be positive"),
    ],
)
def test_bad_bakeoff_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], needle: str
) -> None:
    """Refused before the first architecture trains (nothing is written)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    args = [
        str(corpus) if a == "CORPUS" else str(tmp_path / a) if a.endswith(".txt") else a
        for a in args
    ]
    code, out, err = run(capsys, "bakeoff", *args, "--out", str(tmp_path / "runs"))
    assert_refused(code, out, err, needle)
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- model files


def _external(path: Path) -> None:
    onnx.save_model(
        build_tiny_model("rnn"),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=0,
    )


def _foreign(path: Path) -> None:
    model = build_tiny_model("rnn")
    del model.metadata_props[:]
    path.write_bytes(model.SerializeToString())


MODEL_FILES: list[tuple[str, Callable[[Path], Any], str]] = [
    ("missing", lambda p: None, "does not exist"),
    ("zero-bytes", lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (
        "truncated",
        lambda p: p.write_bytes(build_tiny_model("rnn").SerializeToString()[:1500]),
        "truncated",
    ),
    ("random-bytes", lambda p: p.write_bytes(np.random.default_rng(1).bytes(4096)), "not an ONNX"),
    ("foreign-onnx", _foreign, "termlm did not write it"),
    ("malformed-json", lambda p: write_tiny_model(p, meta_text="{not json"), "malformed"),
    (
        "malformed-fields",
        lambda p: write_tiny_model(p, meta=tiny_meta("rnn", context="long")),
        "malformed",
    ),
    (
        "newer-format",
        lambda p: write_tiny_model(p, meta_text=json.dumps({"format": 99})),
        "newer termlm (format 99)",
    ),
    (
        "oversized-metadata",
        lambda p: write_tiny_model(p, meta=tiny_meta("rnn", card={"x": "y" * (17 << 20)})),
        "MB",
    ),
    ("external-data", _external, "external data"),
    ("directory", lambda p: p.mkdir(), "is a folder"),
]


@pytest.mark.parametrize(
    ("make", "needle"), [m[1:] for m in MODEL_FILES], ids=[m[0] for m in MODEL_FILES]
)
@pytest.mark.parametrize("command", ["generate", "eval", "bench", "chat"])
def test_bad_model_files(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    make: Callable[[Path], Any],
    needle: str,
    command: str,
) -> None:
    path = tmp_path / "model.onnx"
    make(path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    extra = {"generate": ["-p", "a", "-n", "2"], "eval": [str(corpus)]}.get(command, [])
    assert_refused(*run(capsys, command, str(path), *extra), needle)


# --------------------------------------------------------------------------- prompts


def generate_json(
    capsys: pytest.CaptureFixture[str], model_path: Path, *args: str
) -> tuple[dict[str, Any], str]:
    code, out, err = run(capsys, "generate", str(model_path), *args, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result, err


def test_empty_prompt(capsys: pytest.CaptureFixture[str], model_path: Path) -> None:
    result, err = generate_json(capsys, model_path, "-p", "", "-n", "5")
    assert result["prompt_tokens"] == 0 and len(result["tokens"]) == 5
    assert err == ""


def test_prompt_of_unseen_characters(capsys: pytest.CaptureFixture[str], model_path: Path) -> None:
    result, err = generate_json(capsys, model_path, "-p", "ZZ€€", "-n", "3")
    assert "4 of the prompt's 4 characters never appeared" in err and "<unk>" in err
    assert result["prompt_tokens"] == 4 and len(result["tokens"]) == 3


def test_one_megabyte_prompt_on_stdin(
    capsys: pytest.CaptureFixture[str], model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt = ("hello world " * 90_000)[: 1 << 20]
    monkeypatch.setattr(sys, "stdin", io.StringIO(prompt))
    started = time.perf_counter()
    result, err = generate_json(capsys, model_path, "-p", "-", "-n", "3")
    assert time.perf_counter() - started < 20
    assert "keeping the last 16" in err
    assert result["prompt_tokens"] == 16 and result["prompt_truncated"] == len(prompt) - 16
    assert len(result["tokens"]) == 3


# --------------------------------------------------------------------------- decoding

RAISES = """
    from typing import ClassVar
    import numpy as np
    from termlm.decoding import hookimpl

    class Raises:
        name: ClassVar[str] = "raises"
        description: ClassVar[str] = "Two tokens, then an exception."
        options: ClassVar[tuple] = ()

        def run(self, ctx):
            for _ in range(2):
                scores = ctx.scores()[0]
                token = int(np.argmax(scores))
                ctx.session.feed([token])
                yield ctx.choice(scores, token)
            raise RuntimeError("the plugin broke")

    class BadId:
        name: ClassVar[str] = "bad-id"
        description: ClassVar[str] = "An id past the vocabulary."
        options: ClassVar[tuple] = ()

        def run(self, ctx):
            scores = ctx.scores()[0]
            yield ctx.choice(scores, ctx.vocab_size + 7)

    @hookimpl
    def register_plugins(register):
        register(Raises)
        register(BadId)
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "hostile.py").write_text(textwrap.dedent(RAISES))
    return folder


@pytest.mark.parametrize(
    ("decoder", "needle"),
    [("raises", "the plugin broke"), ("bad-id", "outside the vocabulary")],
)
def test_plugin_failures_end_with_an_error(
    capsys: pytest.CaptureFixture[str],
    model_path: Path,
    plugin_dir: Path,
    decoder: str,
    needle: str,
) -> None:
    args = ["generate", str(model_path), "-p", "the", "-n", "5", "--decoder", decoder]
    assert_refused(*run(capsys, *args, "--plugins-dir", str(plugin_dir)), needle, output=True)
    # with --json the tokens made before the failure are still printed, with the error
    code, out, err = run(capsys, *args, "--plugins-dir", str(plugin_dir), "--json")
    assert code == 1 and "Traceback" not in err and err.startswith("error:")
    result = json.loads(out)
    assert result["stop_reason"] == "error" and needle in result["error"]


def test_unreadable_plugin_folder_is_reported(
    capsys: pytest.CaptureFixture[str], model_path: Path, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "plugins.txt"
    not_a_folder.write_text("not a folder")
    missing = tmp_path / "missing"
    code, out, err = run(
        capsys,
        *["generate", str(model_path), "-p", "the", "-n", "2", "--decoder", "greedy"],
        *["--plugins-dir", str(not_a_folder), "--plugins-dir", str(missing)],
    )
    assert code == 0 and out
    assert "cannot read the folder" in err and "the folder does not exist" in err
    code, out, err = run(
        capsys,
        *["generate", str(model_path), "-p", "the", "--decoder", "raises"],
        *["--plugins-dir", str(missing)],
    )
    assert_refused(code, out, err, "unknown decoding strategy 'raises'")


def _out_of_range(spec: Any) -> list[Any]:
    """Values that `spec` must refuse: past each bound, outside its choices, of a wrong type."""
    bad: list[Any] = []
    if spec.choices is not None:
        bad.append("no-such-choice")
    if spec.type in (int, float):
        bad.append("not-a-number")
        if spec.min is not None:
            bad.append(spec.min if not spec.min_inclusive else spec.min - 1)
        if spec.max is not None:
            bad.append(spec.max if not spec.max_inclusive else spec.max + 1)
        if spec.type is float:
            bad.append("nan")
    if spec.type is bool:
        bad.append("perhaps")
    return bad


def test_every_option_of_every_strategy_outside_its_range() -> None:
    from termlm.decoding import build_plugin_manager, validate_options
    from termlm.errors import PluginError

    registry = build_plugin_manager(entry_points=False, user_dir=False)
    checked = 0
    for strategy in registry.strategy_names():
        for spec in registry.options_for(strategy):
            for value in _out_of_range(spec):
                with pytest.raises(PluginError) as info:
                    validate_options(registry, strategy, {spec.name: value})
                assert spec.name in info.value.message
                checked += 1
    assert checked > 40  # every built-in strategy's options were tried


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "temperature=0"], "temperature must be in (0, 10]"),
        (["--set", "top_p=2"], "top_p must be in (0, 1]"),
        (["--set", "top_k=-1"], "top_k must be >= 0"),
        (["--set", "temperature=warm"], "temperature must be a number"),
        (["--decoder", "beam", "--set", "num_beams=0"], "num_beams must be in [1, 32]"),
        (["--set", "tempreature=1"], "unknown option 'tempreature'"),
        (["--decoder", "nucleus"], "unknown decoding strategy 'nucleus'"),
        (["-n", "-5"], "-n must be 0 or more"),
        (["--set", "=3"], "--set expects KEY=VALUE"),
    ],
)
def test_bad_decoding_options(
    capsys: pytest.CaptureFixture[str], model_path: Path, args: list[str], needle: str
) -> None:
    assert_refused(*run(capsys, "generate", str(model_path), "-p", "a", *args), needle)


# --------------------------------------------------------------------------- the real entry point


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "termlm", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_subprocess_refusals_have_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(2).bytes(2048))
    cases = [
        (["generate", "random.onnx", "-p", "hi"], "not an ONNX"),
        (["train", "missing.txt"], "corpus not found"),
        (["train", "x.txt", "--val-fraction", "2"], "--val-fraction"),
    ]
    for args, needle in cases:
        proc = _cli(*args, cwd=tmp_path)
        assert_refused(proc.returncode, proc.stdout, proc.stderr, needle)
    debug = _cli("--debug", "generate", "random.onnx", "-p", "hi", cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr  # --debug shows it


# --------------------------------------------------------------------------- the chat off a terminal


def test_chat_off_a_terminal_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal the app would wait for keys that never come (a test harness, a pipe) or
    write its screen's escape codes into a file: a line saying what to use instead."""
    code, out, err = run(capsys, "chat", "--demo")
    assert code == 1 and out == "" and "Traceback" not in err
    assert "termlm chat needs a terminal" in err and "termlm generate" in err


def test_chat_with_its_input_from_a_pipe_ends_at_once(tmp_path: Path) -> None:
    from cli_helpers import termlm

    started = time.monotonic()
    done = termlm("chat", cwd=tmp_path, stdin="hello\n")
    assert time.monotonic() - started < 60  # (the app, had it started, would never end)
    assert done.returncode == 1 and done.stdout == ""
    assert "needs a terminal" in done.stderr and "Traceback" not in done.stderr
