"""A disk that fills up during training, made real with a file-size limit (RLIMIT_FSIZE, the
SIGXFSZ signal ignored: a write past the limit fails with EFBIG, as a full disk fails with ENOSPC).

Training must end like export does: one clear error, the last whole checkpoint untouched, no
temporary file, metrics.jsonl whole line by line, and `--resume` carrying on."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
resource = pytest.importorskip("resource")

from termlm.cli.app import main  # noqa: E402
from termlm.training.checkpoint import append_metrics, trim_metrics  # noqa: E402

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20
)
TINY = ["--embed", "8", "--hidden", "16", "--context", "16", "--batch-size", "4", "--threads", "1"]
CHECKPOINT = ("last.safetensors", "trainer.safetensors", "trainer.json")


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """No file of this process may grow past ``limit`` bytes while inside the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def metrics_steps(run_dir: Path) -> list[int]:
    """The step of every line of metrics.jsonl (each line must be whole JSON)."""
    text = (run_dir / "metrics.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line)["step"] for line in text.splitlines()]


@pytest.mark.parametrize(
    "limit", [8_000, 20_000], ids=["weights-too-big", "optimizer-state-too-big"]
)
def test_a_full_disk_during_training_keeps_the_last_checkpoint_and_resume_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], limit: int
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run_dir = tmp_path / "runs" / "full"
    base = ["train", str(corpus), "--out", str(tmp_path / "runs"), "--name", "full", *TINY, "-q"]
    code, _, err = run(capsys, *base, "--max-steps", "20")
    assert code == 0, err
    before = {name: (run_dir / name).read_bytes() for name in CHECKPOINT}
    best_before = (run_dir / "best.safetensors").read_bytes()
    # the weights are ~10 kB and the optimizer state ~26 kB: one limit stops each
    assert len(before["last.safetensors"]) > 8_000 and len(before["trainer.safetensors"]) > 20_000

    with file_size_limit(limit):
        code, out, err = run(capsys, "train", "--resume", str(run_dir), "--max-steps", "40", "-q")
    lines = err.splitlines()
    assert code == 1 and out == "" and "Traceback" not in err, err
    assert len(lines) == 2 and lines[0].startswith("error: training stopped at step "), err
    assert "cannot write" in lines[0] and "File too large" in lines[0], err
    assert lines[1] == (
        f"the checkpoint of step 20 in {run_dir} is intact; "
        f"free some space, then: termlm train --resume {run_dir}"
    )
    assert {name: (run_dir / name).read_bytes() for name in CHECKPOINT} == before
    assert (run_dir / "best.safetensors").read_bytes() == best_before or limit > 10_400
    assert sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")) == []

    code, out, err = run(
        capsys, "train", "--resume", str(run_dir), "--max-steps", "40", "-q", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["steps"] == 40
    steps = metrics_steps(run_dir)
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # none twice


def test_a_full_disk_before_the_first_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run_dir = tmp_path / "runs" / "early"
    args = ["train", str(corpus), "--out", str(tmp_path / "runs"), "--name", "early", *TINY]
    with file_size_limit(8_000):
        code, _, err = run(capsys, *args, "--max-steps", "20", "-q")
    assert code == 1 and "Traceback" not in err, err
    assert err.splitlines()[1] == (
        f"no checkpoint was saved yet; free some space, remove {run_dir} and train again"
    )
    assert sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")) == []


def test_a_metrics_line_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    append_metrics(tmp_path, {"step": 1, "sample": "a"})
    size = (tmp_path / "metrics.jsonl").stat().st_size
    with file_size_limit(size + 10), pytest.raises(OSError, match="File too large"):
        append_metrics(tmp_path, {"step": 2, "sample": "x" * 100})
    assert (tmp_path / "metrics.jsonl").stat().st_size == size
    append_metrics(tmp_path, {"step": 2, "sample": "b"})
    assert metrics_steps(tmp_path) == [1, 2]


def test_resume_drops_the_lines_after_its_checkpoint(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        append_metrics(tmp_path, {"step": step})
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 40, "samp')  # a line cut off by a crash
    trim_metrics(tmp_path, 20)
    assert metrics_steps(tmp_path) == [10, 20]


def test_ctrl_c_while_a_checkpoint_is_written_lands_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C in the middle of the three files: they are all written, then KeyboardInterrupt."""
    import os

    from termlm.config import ModelConfig
    from termlm.training import checkpoint
    from termlm.training.models import build_model
    from termlm.training.optim import AdamW

    model = build_model(ModelConfig(arch="rnn", vocab_size=5, embed=4, hidden=4, layers=1))
    optimizer = AdamW(list(model.parameters()), lr=0.1)
    real_save_file = checkpoint.save_file

    def save_file_then_ctrl_c(tensors: dict[str, torch.Tensor], filename: str) -> None:
        real_save_file(tensors, filename)
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, half-way through the checkpoint

    monkeypatch.setattr(checkpoint, "save_file", save_file_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(tmp_path, model, optimizer, checkpoint.TrainerState(step=7))
    assert sorted(p.name for p in tmp_path.iterdir()) == list(sorted(CHECKPOINT))
    assert json.loads((tmp_path / "trainer.json").read_text())["state"]["step"] == 7
