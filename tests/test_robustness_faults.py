"""Faults: Ctrl-C, a disk that fills up half-way, two writers at once. The previous file survives
whole, no temporary file is left behind, and the user gets one or two lines."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from termlm.atomic import atomic_path, atomic_write_bytes  # noqa: E402
from termlm.cli.app import main  # noqa: E402
from termlm.modelfile import read_model_meta  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20
)
TINY = ["--embed", "8", "--hidden", "16", "--context", "16", "--batch-size", "4", "--threads", "1"]


def interruptible() -> None:
    """In the child: Ctrl-C raises KeyboardInterrupt even when this test run was started in the
    background, where the shell makes children ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(folder: Path) -> list[str]:
    """Temporary files of atomic writes still in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


class DiskFull:
    """A writer that writes half of what it is given, then fails as a full disk does."""

    def __init__(self, exc: BaseException | None = None) -> None:
        self.exc = exc or OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.calls = 0

    def write(self, path: Path, data: bytes) -> int:
        self.calls += 1
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise self.exc

    @property
    def write_bytes(self) -> Callable[[Path, bytes], int]:
        """A plain function, to stand in for ``Path.write_bytes``."""

        def write_bytes(path: Path, data: bytes) -> int:
            return self.write(path, data)

        return write_bytes


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, finished training run of a tiny LSTM."""
    from termlm.training.loop import train
    from termlm.training.options import build_options

    folder = tmp_path_factory.mktemp("runs")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    options = build_options(
        corpus=str(corpus),
        level="char",
        arch="lstm",
        embed=8,
        hidden=16,
        context=16,
        batch_size=4,
        max_steps=2,
        out=str(folder),
        name="tiny",
        threads=1,
    )
    return Path(train(options, show_progress=False)["run_dir"])


@pytest.fixture(scope="module")
def graph_bytes(run_dir: Path) -> bytes:
    """The run's float ONNX graph, made once (the faults below are about writing it)."""
    from termlm.export import load_run
    from termlm.export.graph import to_onnx_bytes

    model, _, _ = load_run(str(run_dir))
    model.eval()
    return to_onnx_bytes(model)


@pytest.fixture
def fast_graph(monkeypatch: pytest.MonkeyPatch, graph_bytes: bytes) -> None:
    monkeypatch.setattr("termlm.export.exporter.to_onnx_bytes", lambda model: graph_bytes)


def export(run_dir: Path, out: Path, name: str) -> Any:
    from termlm.export import export_model, load_run

    model, tokenizer, info = load_run(str(run_dir))
    return export_model(
        model, tokenizer, card=info.card(), name=name, out_path=out, level=info.level
    )


# --------------------------------------------------------------------------- atomic writes


def test_a_write_failing_half_way_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old contents")
    full = DiskFull()
    monkeypatch.setattr(Path, "write_bytes", full.write_bytes)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, b"new contents " * 1000)
    assert info.value.errno == errno.ENOSPC and full.calls == 1
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents"
    assert leftovers(tmp_path) == []


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_checkpoint_write_failing_half_way_keeps_the_previous_checkpoint(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from termlm.config import ModelConfig
    from termlm.training import checkpoint
    from termlm.training.models import build_model
    from termlm.training.optim import AdamW

    config = ModelConfig.from_dict(json.loads((run_dir / "config.json").read_text())["model"])
    model = build_model(config)
    before = (run_dir / "last.safetensors").read_bytes()
    full = DiskFull()

    def failing_save(module: Any, filename: str) -> None:
        full.write(Path(filename), before)

    monkeypatch.setattr(checkpoint, "save_model", failing_save)
    with pytest.raises(OSError):
        checkpoint.save_weights(model, run_dir / "last.safetensors")
    monkeypatch.setattr(
        checkpoint, "save_file", lambda tensors, filename: failing_save(0, filename)
    )
    trainer_before = (run_dir / "trainer.safetensors").read_bytes()
    optimizer = AdamW(list(model.parameters()), lr=0.1)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint(run_dir, model, optimizer, checkpoint.TrainerState())
    assert (run_dir / "last.safetensors").read_bytes() == before
    assert (run_dir / "trainer.safetensors").read_bytes() == trainer_before
    checkpoint.load_weights(model, run_dir / "last.safetensors")  # still loads
    assert leftovers(run_dir) == []


def test_concurrent_writers_and_a_reader_never_meet_a_mixed_file(tmp_path: Path) -> None:
    import threading

    target = tmp_path / "shared.bin"
    payloads = [bytes([i]) * (1 << 20) for i in range(4)]
    atomic_write_bytes(target, payloads[0])
    done = threading.Event()
    seen: set[bytes] = set()
    mixed: list[int] = []  # lengths of reads that were no payload whole

    def writer(data: bytes) -> None:
        for _ in range(10):
            atomic_write_bytes(target, data)

    def reader() -> None:
        while not done.is_set():
            data = target.read_bytes()
            if data in payloads:
                seen.add(data[:1])
            else:
                mixed.append(len(data))

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    assert mixed == [] and seen
    assert target.read_bytes() in payloads
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- export


@pytest.mark.usefixtures("fast_graph")
def test_export_failing_half_way_keeps_the_previous_model(
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "model.onnx"
    export(run_dir, out, "first")
    before = out.read_bytes()
    full = DiskFull()
    monkeypatch.setattr(Path, "write_bytes", full.write_bytes)
    with pytest.raises(OSError):
        export(run_dir, out, "second")
    monkeypatch.setattr(Path, "write_bytes", DiskFull().write_bytes)
    code, stdout, err = run(capsys, "export", str(run_dir), "--out", str(out))
    monkeypatch.undo()
    assert full.calls == 1
    assert code == 1 and stdout == "" and "Traceback" not in err
    assert err.startswith("error: No space left on device") and len(err.splitlines()) == 2
    assert out.read_bytes() == before and read_model_meta(out).name == "first"
    assert leftovers(tmp_path) == []


@pytest.mark.usefixtures("fast_graph")
@pytest.mark.parametrize("where", ["checks", "write"])
def test_ctrl_c_during_export_writes_nothing(
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    if where == "checks":

        def interrupted(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr("termlm.export.checks.check_parity", interrupted)
    else:
        monkeypatch.setattr(Path, "write_bytes", DiskFull(KeyboardInterrupt()).write_bytes)
    out = tmp_path / "model.onnx"
    code, _, err = run(capsys, "export", str(run_dir), "--out", str(out))
    assert code == 130 and err.strip() == "interrupted" and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_two_exports_to_one_path_at_once(run_dir: Path, tmp_path: Path) -> None:
    """Two processes export to the same file; the survivor is one of them, whole."""
    out = tmp_path / "shared.onnx"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "termlm",
                "export",
                str(run_dir),
                "--out",
                str(out),
                "--name",
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("alpha", "beta")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    meta = read_model_meta(out)
    assert meta.name in ("alpha", "beta")
    from termlm.runtime.onnx_model import load_model

    assert load_model(out).name == meta.name  # the graph loads: the file is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.onnx"]


# --------------------------------------------------------------------------- training


def test_ctrl_c_during_training_saves_a_checkpoint_and_resume_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 5, encoding="utf-8")
    run_dir = tmp_path / "runs" / "ctrl-c"
    args = ["train", str(corpus), "--out", str(tmp_path / "runs"), "--name", "ctrl-c", *TINY]
    proc = subprocess.Popen(  # a one-minute budget: a validation (metrics.jsonl) every 6 s
        [sys.executable, "-m", "termlm", *args, "--minutes", "1", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "metrics.jsonl").exists():  # the first validation: inside the loop
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never reached its first validation"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (1, 130), err  # an error, or the shell's code for Ctrl-C
    assert "Traceback" not in err and len(err.splitlines()) == 2, err
    assert "stopped at step" in err and "termlm train --resume" in err
    stopped = json.loads((run_dir / "interrupted.json").read_text())["step"]
    assert stopped > 0 and (run_dir / "last.safetensors").exists()
    assert leftovers(run_dir) == []

    code, out, err = run(
        capsys, "train", "--resume", str(run_dir), "--max-steps", str(stopped + 3), "-q", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["steps"] == stopped + 3
    assert not (run_dir / "interrupted.json").exists()
