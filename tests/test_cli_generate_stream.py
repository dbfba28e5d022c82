"""`termlm generate --echo` and `--jsonl`: the prompt before the text, and one event per token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run, termlm, write_models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_models(tmp_path_factory.mktemp("generate-models"))


def test_echo_prints_the_prompt_first(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["generate", str(models["char-rnn"]), "-p", "hello ", "-n", "8", "--seed", "3"]
    code, plain, err = run(capsys, *args)
    assert code == 0, err
    code, echoed, err = run(capsys, *args, "--echo")
    assert code == 0, err
    assert echoed == "hello " + plain
    assert not plain.startswith("hello ")  # off by default


def test_echo_of_stdin_in_a_real_pipe(models: dict[str, Path], tmp_path: Path) -> None:
    proc = termlm(
        "generate", str(models["char-rnn"]), "-p", "-", "-n", "4", "--echo", "--seed", "1",
        cwd=tmp_path, stdin="the fox",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("the fox") and proc.stdout.endswith("\n")


@pytest.mark.parametrize("decoder", ["sample", "greedy"])
def test_jsonl_is_one_event_per_token_then_done(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str], decoder: str
) -> None:
    args = ["generate", str(models["char-memory"]), "-p", "the ", "-n", "6", "-d", decoder]
    code, out, err = run(capsys, *args, "--seed", "2", "--jsonl")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    tokens, done = events[:-1], events[-1]
    assert [e["event"] for e in tokens] == ["token"] * 6 and done["event"] == "done"
    assert [e["index"] for e in tokens] == list(range(6))
    assert [e["id"] for e in tokens] == done["ids"] == done["tokens"]
    assert "".join(e["text"] for e in tokens) == done["text"]
    assert [e["logprob"] for e in tokens] == pytest.approx(done["logprobs"])
    for event in tokens:
        assert event["logprob"] <= 0 and event["top"]
        assert {"id", "text", "logprob"} == set(event["top"][0])
    code, whole, err = run(capsys, *args, "--seed", "2", "--json")
    assert code == 0, err
    single = json.loads(whole)
    assert single["text"] == done["text"] and single["ids"] == done["ids"]


def test_jsonl_beam_search_reports_its_beams(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "generate", str(models["char-rnn"]), "-p", "hel", "-n", "4", "-d", "beam",
        "--set", "num_beams=3", "--jsonl",
    )  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    beams = [e for e in events if e["event"] == "beams"]
    assert beams and all(len(e["beams"]) <= 3 for e in beams)
    assert events[-1]["event"] == "done" and events[-1]["stop_reason"] in ("length", "eos")


def test_json_and_jsonl_together_are_refused(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "generate", str(models["char-rnn"]), "--json", "--jsonl")
    assert code == 1 and out == "" and "choose one" in err


def test_jsonl_in_a_closed_pipe_stops_quietly(models: dict[str, Path], tmp_path: Path) -> None:
    import subprocess
    import sys

    from cli_helpers import plain_env

    command = [sys.executable, "-m", "termlm", "generate", str(models["char-rnn"]), "-n", "3000"]
    with subprocess.Popen(
        [*command, "--jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=plain_env()
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader leaves, as `| head -1` does
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert json.loads(first)["event"] == "token"
    assert code == 0 and err == ""
