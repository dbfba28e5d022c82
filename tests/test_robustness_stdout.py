"""`termlm generate` writing to a full or closed standard output: one line, exit 1, never an abort.

The generation runs in a thread inside onnxruntime; a process that ended under it aborted
(`terminate called without an active exception`, exit 134) in some runs, so each case runs ten
times, against the bundled model (onnxruntime with its own thread pool)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = 10
GENERATE = [sys.executable, "-m", "termlm", "generate", "-p", "The "]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")


def _close_stdout() -> None:
    os.close(1)  # in the child, before python starts: like `termlm generate ... >&-`


def _generate_into_dev_full(*extra: str) -> subprocess.CompletedProcess[str]:
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [*GENERATE, *extra],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=120,
        )


def test_a_full_stdout_is_one_line_and_exit_1() -> None:
    for _ in range(RUNS):
        proc = _generate_into_dev_full("-n", "100000")
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.splitlines() == [
            "error: cannot write the generated text to standard output: No space left on device",
            "check where the output goes (free space, a file that can be written)",
        ]


def test_a_full_stdout_with_json_is_one_line_and_exit_1() -> None:
    proc = _generate_into_dev_full("-n", "20", "--json")  # the JSON is written at the end
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0] == "error: No space left on device", proc.stderr


def test_a_closed_stdout_is_one_line_and_exit_1() -> None:
    for _ in range(RUNS):
        proc = subprocess.run(
            [*GENERATE, "-n", "100000"],
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=120,
            preexec_fn=_close_stdout,
        )
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.splitlines()
        assert lines == [
            "error: standard output is closed: the generated text has nowhere to go",
            "run it with its output on the terminal, in a file (> FILE) or in a pipe",
        ]


def test_a_reader_that_leaves_ends_it_quietly() -> None:
    """`termlm generate ... | head -c 20`: exit 0, nothing on stderr."""
    for _ in range(RUNS):
        proc = subprocess.Popen(GENERATE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        assert proc.stdout is not None and proc.stderr is not None
        assert len(proc.stdout.read(20)) == 20  # it is generating
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 0, err
        assert err == b""
