"""`--resume` from another folder: the run finds its corpus by its absolute path; a corpus that
moved or changed is named, with the way to point at it (`--corpus`, checked by SHA-256)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from termlm.cli.app import main

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20
)
TINY = ["--embed", "8", "--hidden", "16", "--context", "16", "--batch-size", "4", "--threads", "1"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A run of 4 steps, trained from tmp/start with the corpus named by a relative path."""
    start = tmp_path / "start"
    start.mkdir()
    (start / "corpus.txt").write_text(TEXT, encoding="utf-8")
    monkeypatch.chdir(start)
    code, _, err = run(
        capsys, "train", "corpus.txt", "--out", "runs", "--name", "r", *TINY, "--max-steps", "4"
    )
    assert code == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return start / "runs" / "r"


def resume(capsys: pytest.CaptureFixture[str], run_dir: Path, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "train", "--resume", str(run_dir), "--max-steps", "6", "-q", *extra)


def test_resume_from_another_folder_finds_the_corpus(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((trained / "config.json").read_text())
    assert config["corpus"]["path"] == str(trained.parents[1] / "corpus.txt")
    code, out, err = resume(capsys, trained, "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 6


def test_a_moved_corpus_is_named_and_found_with_corpus(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = trained.parents[1] / "corpus.txt"
    moved = tmp_path / "moved.txt"
    original.rename(moved)
    code, out, err = resume(capsys, trained)
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.splitlines() == [
        f"error: --resume {trained}: the run's corpus {original} is not there any more",
        f"point at it: termlm train --resume {trained} --corpus PATH (a copy of it is fine: "
        f"it is checked by its SHA-256, "
        f"{json.loads((trained / 'config.json').read_text())['corpus']['sha256'][:16]}...)",
    ]
    code, out, err = resume(capsys, trained, "--corpus", str(moved), "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 6
    # the run now knows where its corpus is
    assert json.loads((trained / "config.json").read_text())["corpus"]["path"] == str(moved)


def test_a_changed_corpus_is_refused(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = trained.parents[1] / "corpus.txt"
    original.write_text(TEXT.replace("speak", "shout"), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in trained.iterdir()}
    code, _, err = resume(capsys, trained)
    assert code == 1 and "Traceback" not in err
    first, hint = err.splitlines()
    assert first.startswith(f"error: --resume {trained}: {original} is not the text the run began")
    assert hint == f"give the original text: termlm train --resume {trained} --corpus PATH"
    assert {p.name: p.read_bytes() for p in trained.iterdir()} == before  # nothing written
    other = trained.parents[1] / "other.txt"
    other.write_text("something else entirely\n" * 50, encoding="utf-8")
    code, _, err = resume(capsys, trained, "--corpus", str(other))
    assert code == 1 and f"{other} is not the text the run began with" in err


def test_a_run_without_the_absolute_path_says_how_to_point_at_it(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs written before the path was stored know the corpus by the path as it was given."""
    config = json.loads((trained / "config.json").read_text())
    del config["corpus"]["path"]
    (trained / "config.json").write_text(json.dumps(config))
    code, _, err = resume(capsys, trained)
    assert code == 1 and "the run's corpus corpus.txt is not there any more" in err, err
    code, _, err = resume(capsys, trained, "--corpus", str(trained.parents[1] / "corpus.txt"))
    assert code == 0, err


def test_corpus_without_resume_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", "--corpus", "x.txt")
    assert code == 1 and err.startswith("error: --corpus goes with --resume")
