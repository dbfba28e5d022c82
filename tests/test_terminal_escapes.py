"""Text read from files, and generated text on a terminal, never reaches it as control codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from termlm.cli.app import main
from termlm.cli.generate import _consume
from termlm.decoding.events import DoneEvent, GenerationResult, TokenEvent

onnx = pytest.importorskip("onnx")

from tiny_onnx import tiny_meta, write_tiny_model  # noqa: E402

EVIL = "evil\x1b]0;pwned\x07\x1b[2J\x9b31m\rX\u202e"
CONTROLS = ("\x1b", "\x07", "\x9b", "\r", "\u202e")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(text: str) -> None:
    for ch in CONTROLS:
        assert ch not in text, repr(text)


@pytest.fixture
def evil_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", "the quick brown fox jumps over the lazy dog")
    vocab = tokenizer.vocab_size
    config = {**tiny_meta("window")["config"], "vocab_size": vocab}
    meta = tiny_meta("window", name=EVIL, config=config, card={"description": EVIL})
    meta["tokenizer"] = tokenizer.to_json()
    write_tiny_model(folder / "window.onnx", "window", vocab=vocab, meta=meta)
    bad = tiny_meta("rnn", name=EVIL, context="\x1b[2J")
    write_tiny_model(folder / "broken.onnx", "rnn", meta=bad)
    write_tiny_model(folder / "named\x1b[2J.onnx", "rnn")  # the file's own name
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(folder))
    monkeypatch.setenv("COLUMNS", "300")
    return folder


def test_models_table_shows_escapes(capsys: pytest.CaptureFixture[str], evil_models: Path) -> None:
    code, out, err = cli(capsys, "models")
    assert code == 0, err
    assert_clean(out + err)
    assert "named\\x1b[2J" in out


def test_models_json_keeps_the_value(capsys: pytest.CaptureFixture[str], evil_models: Path) -> None:
    code, out, _ = cli(capsys, "models", "--json")
    assert code == 0
    assert "\x1b" not in out  # JSON writes C0 control characters as \\u escapes
    assert "named\x1b[2J" in {row["name"] for row in json.loads(out)}  # the value itself


def test_notes_and_errors_show_escapes(
    capsys: pytest.CaptureFixture[str], evil_models: Path
) -> None:
    _code, _out, err = cli(capsys, "generate", "window", "-p", "", "-n", "2", "--seed", "1")
    assert "is a bidirectional window model" in err
    assert_clean(err)
    code, _out, err = cli(capsys, "generate", str(evil_models / "broken.onnx"))
    assert code == 1 and "malformed" in err
    assert_clean(err)


def test_error_messages_show_escapes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "plugins\x1b[2J"
    code, _out, err = cli(
        capsys, "generate", str(tmp_path / "m\x1b]0;x\x07.onnx"), "--plugins-dir", str(folder)
    )
    assert code == 1 and "does not exist" in err
    assert_clean(err)


def test_plugins_table_shows_escapes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "evil.py").write_text(
        "from typing import ClassVar\n"
        "from termlm.decoding import hookimpl\n"
        "class Evil:\n"
        "    name: ClassVar[str] = 'evil'\n"
        f"    description: ClassVar[str] = {EVIL!r}\n"
        "    options: ClassVar[tuple] = ()\n"
        "    def process(self, logits, history, info):\n"
        "        return logits\n"
        "class Nameless:\n"
        f"    name = {EVIL!r}\n"
        "@hookimpl\n"
        "def register_plugins(register):\n"
        "    register(Evil)\n"
        "    register(Nameless)\n"
    )
    code, out, err = cli(capsys, "plugins", "--plugins-dir", str(tmp_path))
    assert code == 0, err
    assert "evil" in out
    assert_clean(out + err)


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _events(texts: list[str], final: str) -> list[object]:
    events: list[object] = [
        TokenEvent(token_id=i, text=t, prob=1.0, logprob=0.0, index=i) for i, t in enumerate(texts)
    ]
    result = GenerationResult(
        text=final, token_ids=list(range(len(texts))), logprobs=[], stop_reason="length", seconds=0
    )
    events.append(DoneEvent(result=result))
    return events


@pytest.mark.parametrize("tty", [True, False])
def test_generated_text_on_a_terminal_is_escaped(
    monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    texts = ["line\x1b[2J", " one\n\tand", "\x9b31m two\r"]
    terminal = FakeTerminal(tty)
    monkeypatch.setattr("sys.stdout", terminal)
    result = _consume(iter(_events(texts, "".join(texts) + "\x07tail")), stream=True)  # type: ignore[arg-type]
    shown = terminal.getvalue()
    raw = "".join(texts) + "\x07tail\n"
    assert result.text == raw[:-1]  # the result itself (and --json) keeps every character
    if tty:
        assert_clean(shown.replace("\x07", "").replace("\\x07", ""))
        assert "\x07" not in shown
        assert shown == "line\\x1b[2J one\n\tand\\x9b31m two\\x0d\\x07tail\n"
    else:
        assert shown == raw  # a pipe gets the text as generated
