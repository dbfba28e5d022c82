"""The Train view's job on its own: the state machine over a real `termlm train --events` process,
and its fault paths (a missing corpus, no train extra, an unwritable runs folder, a process that
dies, a stop, the chat quitting mid-training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from termlm.runs import plan
from termlm.runs.job import JobState, TrainJob, format_seconds
from termlm.runs.plan import BAKEOFF, TrainRequest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--embed", "8", "--context", "16", "--batch-size", "4", "--threads", "1"]


def corpus(folder: Path) -> Path:
    path = folder / "tiny.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log.\n" * 60, encoding="utf-8")
    return path


def settle(job: TrainJob, done: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll the job (as the view's timer does) until ``done``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"job stuck in {job.state}: {job.problem}")
        job.poll()
        time.sleep(0.05)


def env_launcher(command: list[str]) -> subprocess.Popen[str]:
    """The real launcher, with this checkout importable in the child."""
    from termlm.runs import job as job_module

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT)
    try:
        return job_module.launch(command)
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_real_tiny_training_finishes_and_exports(in_tmp: Path) -> None:
    pytest.importorskip("torch")
    request = TrainRequest(
        str(corpus(in_tmp)), minutes=1, extra=["--max-steps", "8", "--eval-every", "4", *TINY]
    )
    job = TrainJob(request, launcher=env_launcher, exported_dir=in_tmp / "exported")
    assert job.state is JobState.IDLE
    job.start()
    assert job.state is JobState.STARTING
    settle(job, lambda: job.state not in (JobState.STARTING, JobState.TRAINING))
    assert job.state is JobState.FINISHED, job.problem
    assert job.run_dir == request.folder and (request.folder / "result.json").is_file()
    assert [r["step"] for r in job.curves[0].records] == [4, 8]
    assert job.result is not None and job.result["steps"] == 8
    assert len(job.samples()) == 2 and job.tokens_per_s() is not None
    assert any("tokenizing" in note for note in job.notes)
    assert job.export()
    assert job.state is JobState.EXPORTING
    settle(job, lambda: job.state is not JobState.EXPORTING)
    assert job.state is JobState.EXPORTED, job.problem
    assert job.model_path == in_tmp / "exported" / f"{request.name}.onnx"
    assert job.model_path.is_file() and job.export_report is not None
    from termlm.runtime.onnx_model import load_model

    assert load_model(job.model_path).meta.vocab_size > 5


def test_stop_leaves_a_checkpoint_that_resumes(in_tmp: Path) -> None:
    pytest.importorskip("torch")
    request = TrainRequest(
        str(corpus(in_tmp)),
        minutes=10,
        extra=["--max-steps", "100000", "--eval-every", "5", "--patience", "0", *TINY],
    )
    job = TrainJob(request, launcher=env_launcher)
    job.start()
    settle(job, lambda: bool(job.curves and job.curves[0].records))
    assert job.state is JobState.TRAINING
    assert job.seconds_left() is not None
    assert job.stop()
    assert job.state is JobState.STOPPING
    assert not job.stop()  # once
    settle(job, lambda: job.state is not JobState.STOPPING)
    assert job.state is JobState.STOPPED and job.resumable and job.problem is None
    assert job.stopped_step is not None and job.stopped_step >= 5
    assert (request.folder / "interrupted.json").is_file()
    assert job.resume_hint() == f"termlm train --resume {request.folder}"
    assert job.can_export
    resumed = subprocess.run(
        [
            *(sys.executable, "-m", "termlm", "train", "--resume", str(request.folder)),
            *("--max-steps", str(job.stopped_step + 3), "--json", "--quiet"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == job.stopped_step + 3


def test_quitting_mid_training_stops_the_process(in_tmp: Path) -> None:
    pytest.importorskip("torch")
    request = TrainRequest(
        str(corpus(in_tmp)), minutes=10, extra=["--max-steps", "100000", "--eval-every", "5", *TINY]
    )
    job = TrainJob(request, launcher=env_launcher)
    job.start()
    settle(job, lambda: job.state is JobState.TRAINING)
    process = job._process
    assert process is not None
    job.close()
    assert process.popen.poll() is not None  # no process left behind
    assert job.state is JobState.STOPPED and job.resumable


class Script:
    """A launcher that runs a small Python script in place of termlm (a trainer that dies...)."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str]) -> subprocess.Popen[str]:
        from termlm.runs.job import launch

        self.commands.append(command)
        return launch([sys.executable, "-c", self.code])


def trainer_says(*events: dict[str, object], then: str = "") -> str:
    lines = "".join(f"print({json.dumps(json.dumps(e))}, flush=True)\n" for e in events)
    return "import sys\n" + lines + then


@pytest.fixture
def with_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "missing_train_modules", lambda: [])


def test_a_process_that_dies_fails_with_its_last_words(in_tmp: Path, with_extra: None) -> None:
    code = trainer_says(
        {"event": "setup", "run_dir": "runs/x", "arch": "lstm"},
        {"event": "start", "step": 0, "elapsed": 0.0, "total_steps": 10, "budget": None},
        then="sys.stderr.write('Segmentation fault\\n'); sys.exit(139)",
    )
    job = TrainJob(TrainRequest(str(corpus(in_tmp))), launcher=Script(code))
    job.start()
    settle(job, lambda: job.state is JobState.FAILED)
    assert job.problem is not None
    assert "exit code 139" in job.problem and "Segmentation fault" in job.problem
    assert not job.running


def test_the_trainers_own_error_is_shown(in_tmp: Path, with_extra: None) -> None:
    code = trainer_says(
        {"event": "error", "kind": "CorpusError", "message": "the text is empty", "hint": "add"},
        then="sys.exit(1)",
    )
    job = TrainJob(TrainRequest(str(corpus(in_tmp))), launcher=Script(code))
    job.start()
    settle(job, lambda: job.state is JobState.FAILED)
    assert job.problem == "the text is empty\nadd"


def test_stray_lines_and_broken_json_are_skipped(in_tmp: Path, with_extra: None) -> None:
    code = (
        "print('loading…', flush=True)\nprint('{not json', flush=True)\n"
        + trainer_says(
            {"event": "setup", "run_dir": "runs/x", "arch": "gru"},
            {"event": "progress", "step": 5, "elapsed": 2.0, "total_steps": 10, "budget": 60.0},
            {"event": "validation", "step": 5, "train_loss": 2.0, "val_loss": 2.1, "sample": "hi"},
            {"event": "end", "result": {"steps": 10}},
        )[len("import sys\n") :]
    )
    job = TrainJob(TrainRequest(str(corpus(in_tmp))), launcher=Script(code))
    job.start()
    settle(job, lambda: job.state is JobState.FINISHED)
    assert job.samples() == [(5, "hi")] and job.curves[0].arch == "gru"
    assert job.seconds_left() == pytest.approx(2.0)  # steps say 2 s, the budget 58 s
    assert not job.can_export  # runs/x has no weights


def test_a_missing_corpus_fails_before_any_process(in_tmp: Path, with_extra: None) -> None:
    script = Script("")
    job = TrainJob(TrainRequest(str(in_tmp / "nowhere.txt")), launcher=script)
    job.start()
    assert job.state is JobState.FAILED and script.commands == []
    assert job.problem is not None and "no file at" in job.problem


def test_without_the_train_extra_the_job_says_how_to_install_it(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan, "find_spec", lambda name: None)
    assert plan.missing_train_modules() == list(plan.TRAIN_MODULES)
    script = Script("")
    job = TrainJob(TrainRequest(str(corpus(in_tmp))), launcher=script)
    job.start()
    assert job.state is JobState.FAILED and script.commands == []
    assert job.problem is not None and "pip install 'termlm[train]'" in job.problem


def test_an_unusable_runs_folder_fails_before_any_process(in_tmp: Path, with_extra: None) -> None:
    (in_tmp / "blocked").write_text("a file where the runs folder should be")
    script = Script("")
    job = TrainJob(TrainRequest(str(corpus(in_tmp)), out="blocked"), launcher=script)
    job.start()
    assert job.state is JobState.FAILED and script.commands == []
    assert job.problem is not None and "cannot make the runs folder" in job.problem


def test_a_launch_that_fails_is_a_failed_job(in_tmp: Path, with_extra: None) -> None:
    def no_python(command: list[str]) -> subprocess.Popen[str]:
        raise FileNotFoundError(2, "No such file or directory")

    job = TrainJob(TrainRequest(str(corpus(in_tmp))), launcher=no_python)
    job.start()
    assert job.state is JobState.FAILED
    assert job.problem == "cannot start the training process: No such file or directory"


def test_commands_for_one_run_and_a_bakeoff(in_tmp: Path) -> None:
    one = TrainRequest("t.txt", level="word", arch="gru", minutes=2.5, name="n")
    command = one.command()
    assert command[1:4] == ["-m", "termlm", "train"]
    assert command[command.index("--minutes") + 1] == "2.5" and "--events" in command
    assert one.folder == Path("runs/n")
    bake = TrainRequest("t.txt", arch=BAKEOFF, minutes=5, name="b")
    command = bake.command()
    assert command[3] == "bakeoff" and command[command.index("--minutes") + 1] == "1"
    assert bake.folder == Path("runs/bakeoff/b")
    assert bake.resume_command() == "termlm bakeoff --resume runs/bakeoff/b"
    assert TrainRequest("My Text.txt", arch="rnn").name.startswith("My-Text-char-rnn-")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"level": "pixel"}, "unknown level"),
        ({"arch": "cnn"}, "unknown architecture"),
        ({"minutes": 0.0}, "budget"),
    ],
)
def test_bad_requests_are_refused(change: dict[str, object], words: str) -> None:
    from termlm.errors import TermlmError

    request = TrainRequest("t.txt", **change)  # type: ignore[arg-type]
    with pytest.raises(TermlmError, match=words):
        request.check()


def test_format_seconds() -> None:
    assert format_seconds(None) == "-" and format_seconds(125.4) == "2:05"


def test_a_bakeoff_follows_each_run_and_exports_the_best(in_tmp: Path, with_extra: None) -> None:
    rows = [
        {"arch": "gru", "val_bpc": 2.1, "val_loss": 1.4, "run_dir": "runs/bakeoff/b/gru"},
        {"arch": "rnn", "val_bpc": 2.5, "val_loss": 1.7, "run_dir": "runs/bakeoff/b/rnn"},
    ]
    code = trainer_says(
        {"event": "setup", "run_dir": "runs/bakeoff/b/rnn", "arch": "rnn"},
        {"event": "progress", "step": 5, "elapsed": 6.0, "total_steps": None, "budget": 12.0},
        {"event": "setup", "run_dir": "runs/bakeoff/b/gru", "arch": "gru"},
        {"event": "progress", "step": 5, "elapsed": 3.0, "total_steps": None, "budget": 12.0},
        {"event": "end", "rows": rows},
    )
    script = Script(code)
    job = TrainJob(
        TrainRequest(str(corpus(in_tmp)), arch=BAKEOFF, minutes=1, name="b"), launcher=script
    )
    job.start()
    assert script.commands[0][3] == "bakeoff"
    settle(job, lambda: len(job.curves) == 2)
    assert job.seconds_left() == pytest.approx(9.0 + 3 * 12.0)  # this run, then three more
    settle(job, lambda: job.state is JobState.FINISHED)
    assert [c.arch for c in job.curves] == ["rnn", "gru"]
    assert job.rows == rows and job.run_dir == Path("runs/bakeoff/b/gru")


def test_a_training_started_with_sigint_ignored_can_still_be_stopped() -> None:
    """A chat started from a background job passes SIGINT ignored to its trainer; --events turns
    the usual handler back on, or the job's stop would never land."""
    import signal
    import subprocess
    import sys

    code = (
        "import signal\n"
        "from termlm.training.events import stoppable_by_sigint\n"
        "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
        "stoppable_by_sigint()\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_a_trainer_whose_chat_is_killed_stops_with_a_checkpoint(in_tmp: Path) -> None:
    """The chat killed outright (SIGKILL, a closed terminal) cannot stop its trainer: the trainer
    notices its parent is gone and stops as Ctrl-C would, keeping a resumable checkpoint."""
    pytest.importorskip("torch")
    if not Path("/proc/self/stat").is_file():
        pytest.skip("reads process states from /proc")
    import signal

    text = corpus(in_tmp)
    run = in_tmp / "runs" / "orphan"
    train = [
        *(sys.executable, "-m", "termlm", "train", str(text), "--events", "--quiet"),
        *("--out", str(run.parent), "--name", run.name, "--max-steps", "100000"),
        *("--eval-every", "5", "--patience", "0", *TINY),
    ]
    # A stand-in chat: starts the trainer in its own session (as the Train view does), says its
    # pid, then waits to be killed.
    chat = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({train!r}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,\n"
        "                     stderr=subprocess.DEVNULL, start_new_session=True, text=True)\n"
        "print(p.pid, flush=True)\n"
        "for line in p.stdout:\n"
        "    if '\"validation\"' in line:\n"
        "        print('training', flush=True)\n"
        "        break\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", chat],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert parent.stdout is not None
    trainer = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "training"
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)

    def alive() -> bool:  # an ended process not yet reaped (a zombie) counts as ended
        try:
            stat = Path(f"/proc/{trainer}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    deadline = time.monotonic() + 120
    while alive():
        assert time.monotonic() < deadline, "the trainer outlived its chat"
        time.sleep(0.1)
    interrupted = json.loads((run / "interrupted.json").read_text(encoding="utf-8"))
    assert interrupted["step"] >= 5
