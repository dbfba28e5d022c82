"""Damaged copies of real exported model files: each one is refused cleanly or loads and runs.

The fuzzer (scripts/fuzz_model_files.py) runs in a child process, so that a crash inside
onnxruntime would fail the test instead of the test run. The fast version damages tiny models
made here; the slow one damages the bundled models.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

onnx = pytest.importorskip("onnx")

from tiny_onnx import write_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "fuzz_model_files.py"


def fuzz(files: list[Path], cases: int, seed: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, files), "--cases", str(cases), "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    last_case = done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else []
    assert done.returncode in (0, 1), f"the fuzzer crashed (exit {done.returncode}) at {last_case}"
    summary: dict[str, Any] = json.loads(done.stdout)
    assert not summary["failures"], summary["failures"]
    assert done.returncode == 0
    assert "Traceback" not in done.stderr and "EP Error" not in done.stdout
    return summary


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", "abcdefgh ij\n")
    folder = tmp_path_factory.mktemp("tiny")
    return [
        write_tiny_model(
            folder / f"{kind}.onnx", kind, vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json()
        )
        for kind in ("rnn", "memory", "window")
    ]


def test_damaged_tiny_models_are_refused_or_run(tiny_files: list[Path]) -> None:
    summary = fuzz(tiny_files, cases=400, seed=11)
    outcomes = summary["outcomes"]
    assert sum(outcomes.values()) == 400
    assert set(outcomes) <= {"refused", "ran", "step_error"}
    assert outcomes.get("refused", 0) > 0 and outcomes.get("ran", 0) > 0  # both paths were hit
    assert all(summary["by_kind"][kind] for kind in ("flip", "truncate", "splice"))


@pytest.mark.slow
def test_damaged_bundled_models_are_refused_or_run() -> None:
    bundled = sorted((ROOT / "exported").glob("*.onnx"))
    if not bundled:
        pytest.skip("no bundled models")
    summary = fuzz(bundled, cases=150, seed=5)
    assert sum(summary["outcomes"].values()) == 150


def test_the_fuzzer_reports_an_unexpected_exception(tmp_path: Path) -> None:
    """The harness itself: an exception that is not a TermlmError is a failure, by name."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import fuzz_model_files
    finally:
        sys.path.remove(str(SCRIPT.parent))
    path = write_tiny_model(tmp_path / "m.onnx", "rnn")

    def broken_check(path: Path, registry: Any, steps: int = 3) -> str:
        raise IndexError("a reader bug")

    original = fuzz_model_files.check
    fuzz_model_files.check = broken_check
    try:
        summary = fuzz_model_files.fuzz([path], cases=3, seed=0, log=io.StringIO())
    finally:
        fuzz_model_files.check = original
    assert summary["outcomes"] == {"unexpected": 3}
    assert "IndexError('a reader bug')" in summary["failures"][0]
