"""docs/json.md is true: every command on the page, run on tiny models, prints exactly its keys."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ROOT, TEXT, plain_env, termlm, write_models

PAGE = ROOT / "docs" / "json.md"
BLOCK = re.compile(
    r"```console\n\$ (?P<command>[^\n]+)\n```\s*```(?P<kind>jsonl?)\n(?P<body>.*?)```", re.S
)
TINY_TRAINING = ["--max-steps", "3", "--hidden", "16", "--embed", "8", "--context", "16",
                 "--batch-size", "4", "--layers", "1", "--quiet"]  # fmt: skip


def documented() -> list[tuple[str, str, str]]:
    return [(m["command"], m["kind"], m["body"]) for m in BLOCK.finditer(PAGE.read_text("utf-8"))]


FREE_FORM = {"card"}  # a model's card: its keys are the file's own (docs/model-format.md)


def shape(value: Any) -> Any:
    """The keys of a JSON value, recursively: dicts by key, lists by their first item."""
    if isinstance(value, dict):
        return {key: "object" if key in FREE_FORM else shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value and isinstance(value[0], (dict, list)) else []
    return None


def by_event(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON Lines by event kind: the shape of the first event of each kind."""
    kinds: dict[str, Any] = {}
    for line in lines:
        kinds.setdefault(line["event"], shape(line))
    return kinds


def test_the_page_documents_every_json_command() -> None:
    commands = {shlex.split(command)[1] for command, _, _ in documented()}
    assert commands == {
        "train",
        "export",
        "generate",
        "score",
        "eval",
        "models",
        "bench",
        "plugins",
        "runs",
        "bakeoff",
    }
    for command, _, _ in documented():
        assert "--json" in command or "--jsonl" in command


@pytest.mark.slow
def test_every_documented_command_prints_the_documented_keys(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    models = write_models(folder, ("char", "word"))
    names = {"shakespeare-char": models["char-rnn"], "shakespeare-word": models["word-rnn"]}
    for name, path in names.items():
        path.rename(folder / f"{name}.onnx")
    for path in folder.glob("*-memory.onnx"):
        path.unlink()
    for path in folder.glob("*-window.onnx"):
        path.unlink()
    (tmp_path / "poems.txt").write_text(TEXT * 10, encoding="utf-8")
    env = plain_env(TERMLM_MODELS_DIR=str(folder), XDG_DATA_HOME=str(tmp_path / "data"))
    for command, kind, body in documented():
        args = shlex.split(command)[1:]
        if args[0] == "train":
            args += TINY_TRAINING
        proc = termlm(*args, cwd=tmp_path, env=env)
        assert proc.returncode == 0, (command, proc.stderr)
        if kind == "json":
            assert shape(json.loads(proc.stdout)) == shape(json.loads(body)), command
        else:
            got = by_event([json.loads(line) for line in proc.stdout.splitlines()])
            want = by_event([json.loads(line) for line in body.strip().splitlines()])
            assert got == want, command
