"""Endless and huge inputs: corpora from a FIFO fed by a generator process, /dev/zero, a sparse
file, and Ctrl-C while reading. Every reader is bounded and says its limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from termlm.cli.app import main
from termlm.corpus import MAX_ENV, read_corpus
from termlm.errors import ConfigError, CorpusError

pytest.importorskip("onnx")

from tiny_onnx import write_tiny_model

ROOT = Path(__file__).resolve().parents[1]
TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello fox.\n" * 4
TINY_TRAIN = ["--embed", "8", "--hidden", "8", "--batch-size", "2", "--max-steps", "1", "-q"]
pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")

# Writes `payload` into the FIFO for ever (until the reader leaves); prints "open" once the
# reader has opened its end (opening a FIFO for writing waits for a reader).
WRITER = """
import sys
path, payload, pause = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
import time
with open(path, "wb", buffering=0) as fifo:
    print("open", flush=True)
    try:
        while True:
            fifo.write(payload * 4096)
            if pause:
                time.sleep(pause)
    except BrokenPipeError:
        pass
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if not line.startswith(("note:", "warning:"))]
    assert code == 1, err
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


def _command(command: str, model: Path, corpus: Path, out: Path) -> list[str]:
    if command == "eval":
        return ["eval", str(model), str(corpus)]
    return ["train", str(corpus), "--out", str(out), *TINY_TRAIN]


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "endless.txt"
    os.mkfifo(path)
    yield path


def _writer(path: Path, payload: str, pause: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), payload, str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    if proc.stdout:
        proc.stdout.close()


# --------------------------------------------------------------------------- the reader itself


def test_an_endless_fifo_is_read_up_to_the_limit_and_refused(
    fifo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_ENV, "2")
    writer = _writer(fifo, "y\n")
    seen: list[tuple[int, int]] = []
    try:
        with pytest.raises(CorpusError, match="not a regular file") as refused:
            read_corpus(fifo, on_progress=lambda done, total: seen.append((done, total)))
    finally:
        _stop(writer)
    assert "2.0 MB" in refused.value.message and MAX_ENV in (refused.value.hint or "")
    assert seen and all(total == 2 << 20 and done <= total for done, total in seen)


def test_a_fifo_that_ends_is_read_whole(fifo: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", f"open({str(fifo)!r}, 'w').write({TEXT!r})"],
        stderr=subprocess.DEVNULL,
    )
    try:
        corpus = read_corpus(fifo)
    finally:
        writer.wait(timeout=30)
    assert corpus.text == TEXT


def test_dev_zero_is_refused_at_the_first_chunk() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(CorpusError, match=r"binary data .*the first at byte 0"):
        read_corpus("/dev/zero")


def test_a_sparse_file_over_the_limit_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.txt"
    with open(path, "wb") as handle:
        handle.truncate(2 << 30)  # 2 GiB of nothing: no disk used
    chunks: list[int] = []
    with pytest.raises(CorpusError, match="2,048 MB, over the 512 MB") as refused:
        read_corpus(path, on_progress=lambda done, total: chunks.append(done))
    assert chunks == []  # not one chunk was read
    assert f"{MAX_ENV}=2048" in (refused.value.hint or "")
    monkeypatch.setenv(MAX_ENV, "4096")  # the limit raised: now it is read, and is binary
    with open(path, "wb") as handle:
        handle.truncate(8 << 20)
    with pytest.raises(CorpusError, match="binary"):
        read_corpus(path, on_progress=lambda done, total: chunks.append(done))
    assert chunks == []  # refused at the first chunk, not after the whole file
    with open(path, "r+b") as handle:  # 4 MiB of text, then 4 MiB of NUL bytes
        handle.write((TEXT * (1 + (4 << 20) // len(TEXT))).encode()[: 4 << 20])
    with pytest.raises(CorpusError, match=f"the first at byte {4 << 20:,}"):
        read_corpus(path, on_progress=lambda done, total: chunks.append(done))
    assert chunks == [4 << 20]  # the first chunk was read, the second refused


def test_nul_bytes_late_in_a_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "late.txt"
    path.write_bytes(TEXT.encode() * 2000 + b"\0" * 10)
    with pytest.raises(CorpusError, match=f"the first at byte {len(TEXT) * 2000:,}"):
        read_corpus(path)


def test_utf16_text_with_nul_bytes_is_still_text(tmp_path: Path) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes((TEXT * 500).encode("utf-16"))  # over 64 KiB, full of NUL bytes
    assert read_corpus(path).text == TEXT * 500


@pytest.mark.parametrize("value", ["0", "-3", "lots", "1.5"])
def test_a_bad_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    path = tmp_path / "a.txt"
    path.write_text(TEXT)
    monkeypatch.setenv(MAX_ENV, value)
    with pytest.raises(ConfigError, match=MAX_ENV):
        read_corpus(path)


def test_the_limit_can_be_lowered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.txt"
    path.write_text(TEXT * 30000)  # 2 MB
    monkeypatch.setenv(MAX_ENV, "1")
    with pytest.raises(CorpusError, match=r"over the 1\.0 MB"):
        read_corpus(path)


# --------------------------------------------------------------------------- through the CLI


@pytest.mark.parametrize("command", ["train", "eval"])
def test_cli_refuses_an_endless_fifo(
    command: str,
    fifo: Path,
    model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MAX_ENV, "4")
    writer = _writer(fifo, "y\n")
    try:
        code, _, err = run(capsys, *_command(command, model_path, fifo, tmp_path / "runs"))
    finally:
        _stop(writer)
    assert_refused(code, err, "not a regular file", "4.0 MB", f"{MAX_ENV}=8")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "eval"])
def test_cli_refuses_dev_zero_and_a_sparse_file(
    command: str, model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if Path("/dev/zero").exists():
        code, _, err = run(
            capsys, *_command(command, model_path, Path("/dev/zero"), tmp_path / "runs")
        )
        assert_refused(code, err, "binary data")
    # a regular file is read in chunks, up to 64 GiB: 2 GiB of nothing is refused at its first
    # chunk as binary data; a file over the limit before a byte is read
    sparse = tmp_path / "sparse.txt"
    with open(sparse, "wb") as handle:
        handle.truncate(2 << 30)
    code, _, err = run(capsys, *_command(command, model_path, sparse, tmp_path / "runs"))
    assert_refused(code, err, "binary data")
    with open(sparse, "wb") as handle:
        handle.truncate(65 << 30)
    code, _, err = run(capsys, *_command(command, model_path, sparse, tmp_path / "runs"))
    assert_refused(code, err, "66,560 MB, over the 65,536 MB", f"{MAX_ENV}=66560")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "eval"])
def test_ctrl_c_while_reading_a_fifo(
    command: str, fifo: Path, model_path: Path, tmp_path: Path
) -> None:
    """A FIFO that gives a little text now and then: Ctrl-C ends the read at once, exit 130."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "termlm", *_command(command, model_path, fifo, tmp_path / "r")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    writer = _writer(fifo, "some text\n", pause=0.05)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "open"  # termlm has opened the FIFO to read
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        waited = time.monotonic() - started
    finally:
        _stop(writer)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    assert waited < 30


def test_an_endless_prompt_on_stdin_is_refused(model_path: Path) -> None:
    """`termlm generate -p - < /dev/zero` read everything there was (for ever)."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run(
            [sys.executable, "-m", "termlm", "generate", str(model_path), "-p", "-", "-n", "3"],
            stdin=zero,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines()[0] == (
        "error: -p -: standard input gave more than 16 MB, the most termlm reads as a prompt"
    )


def test_a_prompt_under_the_limit_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from termlm.cli.generate import read_prompt

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("héllo\n".encode() * 1000)))
    assert read_prompt("-") == "héllo\n" * 1000
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x" * 3000)))
    with pytest.raises(ConfigError, match="more than 0 MB"):
        read_prompt("-", limit=2000)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y" * 3000))
    with pytest.raises(ConfigError):
        read_prompt("-", limit=2000)
    assert read_prompt("given") == "given"
