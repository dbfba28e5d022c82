"""Running the CLI in tests: in-process (main) and as a real subprocess, at 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_onnx import write_tiny_model

from termlm.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello fox.\n" * 4


def write_models(folder: Path, levels: tuple[str, ...] = ("char",)) -> dict[str, Path]:
    """Tiny random models (rnn, memory, window) per tokenizer level: {"char-rnn": path, ...}."""
    from termlm.tokenizers import fit_tokenizer

    paths = {}
    for level in levels:
        tokenizer = fit_tokenizer(level, TEXT)
        for kind in ("rnn", "memory", "window"):
            path = folder / f"{level}-{kind}.onnx"
            write_tiny_model(path, kind, vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json())
            paths[f"{level}-{kind}"] = path
    return paths


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def plain_env(**extra: str) -> dict[str, str]:
    """80 columns, NO_COLOR, the checkout importable."""
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    env.pop("FORCE_COLOR", None)
    env.update(extra)
    return env


def termlm(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`termlm ARGS` as a real process, stdout and stderr pipes."""
    return subprocess.run(
        [sys.executable, "-m", "termlm", *args],
        capture_output=True,
        text=True,
        env=env or plain_env(),
        cwd=cwd,
        input=stdin,
        timeout=120,
    )
