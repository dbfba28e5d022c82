"""`termlm runs` and `runs show` on run folders made by real tiny trainings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from termlm.cli.app import main  # noqa: E402
from termlm.runs.folder import list_runs, read_points, read_run, safetensors_params  # noqa: E402
from termlm.training.bakeoff import run_bakeoff  # noqa: E402
from termlm.training.loop import TrainingDiverged, TrainingInterrupted, train  # noqa: E402
from termlm.training.options import build_options  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"embed": 16, "hidden": 32, "layers": 1, "context": 32, "batch_size": 8, "threads": 1}
TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 12


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder: finished, interrupted, diverged, a bake-off, and two that are not runs."""
    root = tmp_path_factory.mktemp("runs")
    corpus = root.parent / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    common: dict[str, Any] = {"corpus": str(corpus), "level": "char", "out": str(root), **SMALL}
    train(build_options(**common, arch="gru", max_steps=12, name="finished"), show_progress=False)
    with pytest.raises(TrainingInterrupted):
        train(
            build_options(**common, arch="lstm", max_steps=40, stop_after_steps=8, name="stopped"),
            show_progress=False,
        )
    with pytest.raises(TrainingDiverged):
        train(
            build_options(**common, arch="rnn", max_steps=200, lr=1e4, clip=0.0, name="blew-up"),
            show_progress=False,
        )
    run_bakeoff(
        str(corpus),
        level="char",
        minutes=None,
        params=3000,
        archs=["lstm", "gru"],
        threads=1,
        seed=1,
        out=str(root / "bake"),
        name="duel",
        show_progress=False,
    )
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a run\n", encoding="utf-8")
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json", encoding="utf-8")
    return root


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_listing_json_tells_every_state(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["runs", str(folder), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    runs = {run["name"]: run for run in data["runs"]}
    assert runs["finished"]["state"] == "finished"
    assert runs["finished"]["steps"] == 12
    assert runs["finished"]["corpus"] == "corpus.txt"
    assert runs["finished"]["arch"] == "gru" and runs["finished"]["level"] == "char"
    assert runs["finished"]["best_val_loss"] > 0 and runs["finished"]["val_bpc"] > 0
    assert runs["finished"]["tokens_per_s"] > 0
    assert runs["stopped"]["state"] == "interrupted" and runs["stopped"]["resumable"]
    assert runs["stopped"]["steps"] == 8
    assert runs["stopped"]["params"] > 0  # from the weights' header: no result.json yet
    assert runs["blew-up"]["state"] == "diverged" and not runs["blew-up"]["resumable"]
    [bakeoff] = data["bakeoffs"]
    assert bakeoff["name"] == "bake/duel"
    board = bakeoff["leaderboard"]
    assert sorted(r["arch"] for r in board) == ["gru", "lstm"]
    assert board[0]["val_bpc"] <= board[1]["val_bpc"]
    skipped = {Path(s["path"]).name: s["reason"] for s in data["skipped"]}
    assert "no config.json" in skipped["notes"]
    assert "not JSON" in skipped["broken"]


def test_table_reads_at_80_columns(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run_cli(["runs", str(folder)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == [
        "run", "corpus", "model", "params", "steps", "val", "bpc", "tok/s", "state"
    ]  # fmt: skip
    row = next(line for line in lines if line.startswith("stopped"))
    assert "interrupted:" in row  # and "resumable" on the line under it
    assert "resumable" in lines[lines.index(row) + 1]
    assert any(line.startswith("blew-up") and "diverged" in line for line in lines)
    assert any("bake-off (2)" in line for line in lines)
    assert any(line.lstrip().startswith("1. ") for line in lines)
    assert "skipped" in err and "notes" in err


def test_show_pipe_writes_points_and_samples(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["runs", "show", str(folder / "finished"), "--x", "tokens"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("\t")[:3] == ["run", "step", "tokens"]
    rows = [line.split("\t") for line in lines[1:] if line.startswith("finished\t")]
    assert len(rows) >= 2
    tokens = [float(r[2]) for r in rows]
    assert tokens == sorted(tokens) and tokens[0] > 0
    assert rows[-1][1] == "12"
    assert "samples of finished:" in out
    assert "step      12" in out


def test_show_bpc_and_seconds(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        ["runs", "show", str(folder / "stopped"), "--x", "seconds", "--bpc", "--json"], capsys
    )
    assert code == 0
    [run] = json.loads(out)["runs"]
    assert run["unit"] == "bits/char" and run["x"] == "seconds"
    first_val = read_run(folder / "stopped").points[0].val_loss
    assert first_val is not None
    assert run["val"][0][1] == pytest.approx(first_val / 0.6931471805599453)


def test_show_bakeoff_as_one_plot_with_leaderboard(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["runs", "show", str(folder / "bake" / "duel"), "--json"], capsys)
    assert code == 0
    [bakeoff] = json.loads(out)["bakeoffs"]
    assert len(bakeoff["leaderboard"]) == 2
    assert all(run["val"] for run in bakeoff["leaderboard"])
    code, out, _ = run_cli(["runs", "show", str(folder / "bake")], capsys)  # a folder of them
    assert "# bake-off duel" in out and "bake-off (2)" in out
    assert "samples of lstm:" in out


def test_show_draws_at_a_terminal(folder: Path) -> None:
    env = {**os.environ, "TTY_COMPATIBLE": "1", "FORCE_COLOR": "1", "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "termlm", "runs", "show", str(folder / "finished")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "┌" in done.stdout and "validation" in done.stdout and "steps" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "nowhere"], "no run folder at nowhere"),
        (["runs", "show"], "needs a run folder"),
        (["runs", "nowhere"], "no runs folder at nowhere"),
        (["runs", "show", "{}/finished", "--x", "hours"], "not an axis"),
        (["runs", "show", "{}/notes"], "neither a run folder"),
        (["runs", "show", "{}/broken"], "not a readable run"),
    ],
)
def test_faults_are_one_message(
    folder: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli([a.format(folder) for a in args], capsys)
    assert code == 1
    assert message in err and "Traceback" not in err


def test_params_from_the_weights_header_match_the_trainer(folder: Path) -> None:
    result = json.loads((folder / "finished" / "result.json").read_text(encoding="utf-8"))
    assert safetensors_params(folder / "finished" / "best.safetensors") == result["params"]
    assert safetensors_params(folder / "notes" / "todo.txt") is None


def test_runs_never_imports_torch(folder: Path, tmp_path: Path) -> None:
    from test_no_torch import loaded_modules

    for args in (["runs", str(folder)], ["runs", "show", str(folder / "bake" / "duel")]):
        loaded = loaded_modules(args, tmp_path, block_torch=True)
        assert "torch" not in loaded


def test_a_real_sigint_leaves_a_resumable_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    args = [sys.executable, "-m", "termlm", "train", str(corpus), "-l", "char", "-a", "gru"]
    # validations every 200 steps: the first comes within seconds, the end a minute later
    args += ["--max-steps", "2000", "--out", str(tmp_path / "runs"), "--name", "ctrl-c", "-q"]
    args += [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "ctrl-c" / "metrics.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not (metrics.exists() and metrics.stat().st_size) and process.poll() is None:
            assert time.monotonic() < deadline, "no validation within two minutes"
            time.sleep(0.1)  # waiting for the first validation record
        assert process.poll() is None, "training ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    run = read_run(tmp_path / "runs" / "ctrl-c")
    assert run.state == "interrupted" and run.resumable
    assert run.points and run.steps is not None and run.steps >= run.points[0].step


def test_live_plot_only_at_a_terminal_and_not_with_no_plot(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    base = [sys.executable, "-m", "termlm", "train", str(corpus), "-l", "char", "-a", "gru"]
    base += ["--max-steps", "20", "--out", str(tmp_path / "runs")]
    base += [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    terminal = {**os.environ, "TTY_COMPATIBLE": "1", "FORCE_COLOR": "1", "COLUMNS": "80"}
    pipe = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    outputs = {}
    for name, extra, env in (
        ("plot", [], terminal),
        ("no-plot", ["--no-plot"], terminal),
        ("pipe", [], pipe),
    ):
        done = subprocess.run(
            [*base, "--name", name, *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outputs[name] = done.stderr
    assert "validation" in outputs["plot"] and "latest sample:" in outputs["plot"]
    assert "┌" in outputs["plot"]
    for name in ("no-plot", "pipe"):
        assert "latest sample:" not in outputs[name] and "┌" not in outputs[name]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(st.one_of(st.binary(max_size=60), st.just(b'{"step": 3, "val_loss": 1.5}'))))
def test_metrics_reader_takes_any_bytes(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    points, _notes = read_points(path, tokens_per_step=10.0)
    assert len(points) <= len(lines)
    assert all(p.tokens == p.step * 10.0 for p in points if p.tokens is not None)
    good = sum(line == b'{"step": 3, "val_loss": 1.5}' for line in lines)
    assert len(points) >= good


def test_listing_of_a_single_run_folder(folder: Path) -> None:
    listing = list_runs(folder / "finished")
    assert [run.name for run in listing.runs] == ["finished"]
