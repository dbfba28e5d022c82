"""A training started from the chat, as a state machine over a `termlm train --events` process.

idle → starting → training → finished → exporting → exported; stop() from starting or training:
stopping → stopped (resumable when a checkpoint was saved); any fault → failed, with what to do.
The process's JSON lines are read by a daemon thread into a locked list; ``poll()`` (called by
the view on a timer, or by a test) applies them. Torch-free and Textual-free.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from termlm.errors import TermlmError
from termlm.runs.plan import TrainExtraMissing, TrainRequest, export_command

STOP_GRACE_SECONDS = 30.0  # close(): how long a stopping trainer may take to save, then killed


class JobState(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    TRAINING = "training"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    EXPORTING = "exporting"
    EXPORTED = "exported"
    FAILED = "failed"


RUNNING = (JobState.STARTING, JobState.TRAINING, JobState.STOPPING)


@dataclass
class Curve:
    """One run's validation records (the plot) and its samples."""

    run_dir: str
    arch: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)


class _Process:
    """A child process whose stdout lines and stderr tail are read by daemon threads."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.lock = threading.Lock()
        self.lines: list[str] = []
        self.stderr: deque[str] = deque(maxlen=30)
        self.readers = [
            threading.Thread(target=self._read, args=(popen.stdout, False), daemon=True),
            threading.Thread(target=self._read, args=(popen.stderr, True), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: IO[str] | None, is_err: bool) -> None:
        if stream is None:
            return
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                with self.lock:
                    (self.stderr if is_err else self.lines).append(line.rstrip("\n"))

    def take(self) -> list[str]:
        with self.lock:
            lines, self.lines = self.lines, []
        return lines

    def ended(self) -> int | None:
        """The exit code once the process and both readers are done (every line read)."""
        code = self.popen.poll()
        if code is None or any(reader.is_alive() for reader in self.readers):
            return None
        return code

    def tail(self) -> str:
        with self.lock:
            useful = [line for line in self.stderr if line.strip()]
        return " ".join(line.strip() for line in useful[-2:])

    def interrupt(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            if hasattr(signal, "SIGINT") and self.popen.poll() is None:
                self.popen.send_signal(signal.SIGINT)

    def finish(self, grace: float) -> None:
        """Wait for the process to end; kill it after ``grace`` seconds. Never leaves it behind."""
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        for reader in self.readers:  # its last lines are read before the job looks at them
            reader.join(timeout=10)


Launcher = Callable[[list[str]], subprocess.Popen[str]]


def launch(command: list[str]) -> subprocess.Popen[str]:
    """Its own session: the terminal's keys never reach it; the job alone stops it."""
    import os

    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        start_new_session=True,
    )


class TrainJob:
    """One training from the chat: start, watch (``poll``), stop, export."""

    def __init__(
        self,
        request: TrainRequest,
        *,
        launcher: Launcher = launch,
        clock: Callable[[], float] = time.monotonic,
        exported_dir: Path = Path("exported"),
    ) -> None:
        self.request = request
        self.launcher = launcher
        self.clock = clock
        self.exported_dir = exported_dir
        self.state = JobState.IDLE
        self.problem: str | None = None  # why it failed, and what to do
        self.curves: list[Curve] = []
        self.progress: dict[str, Any] = {}
        self.notes: list[str] = []  # the trainer's `say` lines
        self.result: dict[str, Any] | None = None
        self.rows: list[dict[str, Any]] | None = None  # a bake-off's leaderboard
        self.run_dir: Path | None = None  # the run to export (a bake-off: the best one)
        self.resumable = False
        self.stopped_step: int | None = None  # where the checkpoint of a stopped run is
        self.model_path: Path | None = None
        self.export_report: dict[str, Any] | None = None
        self.started_at: float | None = None
        self._process: _Process | None = None
        self._export: _Process | None = None
        self._ended_event: str | None = None
        self._stop_asked = False

    # -- the training process -------------------------------------------------------------

    def start(self) -> None:
        if self.state is not JobState.IDLE:
            raise RuntimeError(f"a {self.state.value} job cannot start")
        try:
            self.request.check()
            popen = self.launcher(self.request.command())
        except TrainExtraMissing as exc:
            self._fail(str(exc))
            return
        except TermlmError as exc:
            self._fail(str(exc))
            return
        except OSError as exc:
            self._fail(f"cannot start the training process: {exc.strerror or exc}")
            return
        self._process = _Process(popen)
        self.started_at = self.clock()
        self.state = JobState.STARTING

    def stop(self) -> bool:
        """Ask the trainer to stop (SIGINT: it saves a checkpoint). False if nothing runs."""
        if self.state not in (JobState.STARTING, JobState.TRAINING) or self._process is None:
            return False
        self._stop_asked = True
        self._process.interrupt()
        self.state = JobState.STOPPING
        return True

    @property
    def running(self) -> bool:
        return self.state in RUNNING or self.state is JobState.EXPORTING

    def close(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Leaving the chat: stop whatever runs and wait for it (killed after ``grace``)."""
        for process in (self._process, self._export):
            if process is None or process.popen.poll() is not None:
                continue
            if process is not self._process:
                process.interrupt()
            elif not self.stop() and not self._stop_asked:
                process.interrupt()  # one SIGINT only: a second one would cut its checkpoint
            process.finish(grace)
        self.poll()

    def poll(self) -> list[dict[str, Any]]:
        """Apply the events that arrived; returns them (the view shows what is new)."""
        seen: list[dict[str, Any]] = []
        if self._process is not None:
            for line in self._process.take():
                event = _parse(line)
                if event is not None:
                    self._apply(event)
                    seen.append(event)
            if self.state in RUNNING:
                code = self._process.ended()
                if code is not None:
                    self._process_ended(code)
        if self._export is not None and self.state is JobState.EXPORTING:
            self._poll_export()
        return seen

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "say" and isinstance(event.get("text"), str):
            self.notes.append(event["text"])
        elif kind == "setup":
            run_dir = str(event.get("run_dir", ""))
            self.curves.append(Curve(run_dir, str(event.get("arch", ""))))
            self.run_dir = Path(run_dir)
            self.progress = {}
        elif kind in ("start", "progress"):
            self.progress.update(event)
            if self.state is JobState.STARTING:
                self.state = JobState.TRAINING
        elif kind == "validation" and self.curves:
            self.curves[-1].records.append(event)
            if isinstance(event.get("step"), int):
                self.progress["step"] = max(event["step"], self.progress.get("step", 0))
            self.resumable = True  # a checkpoint is written at every validation
        elif kind == "end":
            self._ended_event = "end"
            self.result = event.get("result") if isinstance(event.get("result"), dict) else None
            rows = event.get("rows")
            if isinstance(rows, list) and rows:
                self.rows = rows
                self.run_dir = Path(str(rows[0].get("run_dir")))  # the best, ranked first
        elif kind == "interrupted":
            self._ended_event = "interrupted"
            self.resumable = True
            if isinstance(event.get("step"), int):
                self.stopped_step = event["step"]
        elif kind == "error":
            self._ended_event = "error"
            message, hint = event.get("message"), event.get("hint")
            self.problem = "\n".join(str(part) for part in (message, hint) if part)

    def _process_ended(self, code: int) -> None:
        if self._ended_event == "end" and code == 0:
            self.state = JobState.FINISHED
            return
        if self._stop_asked or self._ended_event == "interrupted":
            folder = self.request.folder
            self.resumable = self._ended_event == "interrupted" or (
                self.request.bakeoff and folder.is_dir()
            )
            self.state = JobState.STOPPED
            self.problem = None
            return
        if self._ended_event != "error" or not self.problem:
            tail = self._process.tail() if self._process else ""
            self.problem = f"the training process ended (exit code {code}) before it finished" + (
                f": {tail}" if tail else ""
            )
        self._fail(self.problem)

    def _fail(self, problem: str) -> None:
        self.problem = problem
        self.state = JobState.FAILED

    # -- figures for the view -------------------------------------------------------------

    def tokens_per_s(self) -> float | None:
        value = self.progress.get("tokens_per_s")
        return float(value) if isinstance(value, int | float) else None

    def seconds_left(self) -> float | None:
        """Of this run (a bake-off: of every run left), from the budget or the steps done."""
        elapsed = self.progress.get("elapsed")
        if not isinstance(elapsed, int | float):
            return None
        guesses = []
        budget, total, step = (self.progress.get(k) for k in ("budget", "total_steps", "step"))
        if isinstance(budget, int | float):
            guesses.append(max(float(budget) - elapsed, 0.0))
        if isinstance(total, int) and isinstance(step, int) and step > 0:
            guesses.append(max(total - step, 0) * elapsed / step)
        if not guesses:
            return None
        left = min(guesses)
        if self.request.bakeoff and isinstance(budget, int | float):
            from termlm.runs.plan import BAKEOFF_ARCHS

            left += max(len(BAKEOFF_ARCHS) - len(self.curves), 0) * float(budget)
        return left

    def samples(self) -> list[tuple[int, str]]:
        return [
            (int(r.get("step", 0)), str(r.get("sample", "")))
            for curve in self.curves
            for r in curve.records
            if r.get("sample")
        ]

    def resume_hint(self) -> str:
        return self.request.resume_command()

    # -- export ---------------------------------------------------------------------------

    @property
    def can_export(self) -> bool:
        return (
            self.state in (JobState.FINISHED, JobState.STOPPED, JobState.FAILED)
            and self.run_dir is not None
            and (self.run_dir / "config.json").is_file()
            and (
                (self.run_dir / "best.safetensors").is_file()
                or (self.run_dir / "last.safetensors").is_file()
            )
        )

    def export(self) -> bool:
        """`termlm export RUN --json` as a process (it checks ONNX against PyTorch itself)."""
        if not self.can_export or self.run_dir is None:
            return False
        out = self.exported_dir / f"{self.run_dir.name}.onnx"
        try:
            popen = self.launcher(export_command(self.request.python, self.run_dir, out))
        except OSError as exc:
            self._fail(f"cannot start the export: {exc.strerror or exc}")
            return False
        self._export = _Process(popen)
        self.model_path = out
        self.problem = None
        self.state = JobState.EXPORTING
        return True

    def _poll_export(self) -> None:
        assert self._export is not None
        code = self._export.ended()
        if code is None:
            return
        report = None
        for line in self._export.take():
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    report = parsed
        if code == 0 and report is not None:
            self.export_report = report
            path = report.get("path")
            if isinstance(path, str):
                self.model_path = Path(path)
            self.state = JobState.EXPORTED
            return
        tail = self._export.tail()
        self._fail(f"the export failed (exit code {code})" + (f": {tail}" if tail else ""))


def _parse(line: str) -> dict[str, Any] | None:
    """One event line; anything else (a stray print) is skipped."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("event"), str) else None


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
