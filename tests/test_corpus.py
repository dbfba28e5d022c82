"""Reading corpora: encodings and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from termlm.corpus import read_corpus
from termlm.errors import CorpusError


def test_utf8_text_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("Ünïcödé and emoji 🙂\n", encoding="utf-8")
    corpus = read_corpus(path)
    assert corpus.text == "Ünïcödé and emoji 🙂\n"
    assert corpus.encoding == "utf-8" and corpus.note is None
    assert len(corpus.sha256) == 64


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_byte_order_marks_are_honoured(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("hello wörld".encode(encoding))
    assert read_corpus(path).text == "hello wörld"


def test_non_utf8_falls_back_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("café crème, naïve".encode("cp1252"))
    corpus = read_corpus(path)
    assert corpus.text == "café crème, naïve"
    assert corpus.encoding == "cp1252"
    assert corpus.note and "not valid UTF-8" in corpus.note


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "not found"),
        (lambda p: p.mkdir(), "folder"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text(" \n\t\n"), "white space"),
        (lambda p: p.write_bytes(bytes(range(256)) * 40), "binary"),
    ],
)
def test_unusable_corpora_are_refused(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "corpus.txt"
    make(path)
    with pytest.raises(CorpusError, match=message):
        read_corpus(path)
