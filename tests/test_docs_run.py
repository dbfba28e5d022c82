"""Docs that run: every shell block marked for it in README.md, docs/*.md, exported/README.md and
the example plugin's README is run, command by command, in a subprocess.

The marker is an HTML comment on the line before a fenced block (invisible on a rendered page)::

    <!-- doctest -->
    ```
    termlm models                      # every line is a command (comments and `\\` allowed)
    ```

In a block whose lines start with `$ `, those lines are the commands and the lines under each,
up to the next `$ `, are the output the page shows: a JSON object or list must have (at least)
the keys shown; text must appear line for line in the command's stdout.

Each command runs in a fresh copy of a small workspace in which the page's placeholders exist:
`corpus.txt` (and `my.txt`, `speech.txt`, `poems.txt`, `tinyshakespeare.txt`,
`moved/corpus.txt`: the same small text), `runs/NAME` (a tiny run stopped after 3 of its 6 steps,
so it can be resumed), `runs/A`, `runs/B`, `runs/bakeoff/NAME` (a one-architecture bake-off),
`exported/NAME.onnx`, a plugin folder `FOLDER`; `MODEL` is the bundled `shakespeare-char`.
Budgets are capped so the whole page runs in seconds: `--minutes M` becomes `--minutes 0.01`, a
`termlm train` with no budget of its own gets `--max-steps 3`, a `termlm bakeoff` `--minutes 0.01`
and two architectures (`--archs rnn,transformer`) unless it names its own, a `termlm bench`
`--tokens 20`. A few commands are not run, each for the reason in NOT_RUN.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_helpers import ROOT, plain_env

from termlm.cli.app import main

pytest.importorskip("torch")

MARK = "<!-- doctest -->"
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "exported" / "README.md",
    ROOT / "examples" / "termlm-plugin-example" / "README.md",
]
NOT_RUN = {
    "termlm chat": "an interactive terminal app: the tests/test_tui_*.py pilots drive it",
    "torchrun": "a distributed launch of several processes: tests/test_training.py runs DDP",
    "pip install": "needs the package index",
}
PLACEHOLDERS = {
    "MODEL": "shakespeare-char",
    "FOLDER": "plugins",
    "INT8.onnx": "exported/NAME-int8.onnx",
}
MINUTES = re.compile(r"--minutes(?:=|\s+)[0-9.]+")


@dataclass
class Command:
    page: str
    line: int
    text: str
    shown: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, lines) of every fenced block right after the marker."""
    lines = path.read_text("utf-8").splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        start = i + 1
        assert start < len(lines) and lines[start].startswith("```"), f"{path}:{i + 1}: no block"
        end = next(j for j in range(start + 1, len(lines)) if lines[j].startswith("```"))
        found.append((start + 2, lines[start + 1 : end]))
    return found


def commands(path: Path) -> list[Command]:
    page = str(path.relative_to(ROOT))
    out: list[Command] = []
    for first, body in blocks(path):
        console = any(line.startswith("$ ") for line in body)
        pending = ""
        for offset, line in enumerate(body):
            number = first + offset
            if console and not line.startswith("$ ") and not pending:
                if out and out[-1].page == page:
                    out[-1].shown.append(line)
                continue
            text = line[2:] if console and line.startswith("$ ") else line
            if not pending and not text.strip():
                continue
            if text.rstrip().endswith("\\"):
                pending += text.rstrip()[:-1] + " "
                continue
            out.append(Command(page, number, pending + text))
            pending = ""
    return out


def all_commands() -> list[Command]:
    return [command for path in PAGES if path.is_file() for command in commands(path)]


TORCH_COMMANDS = ("termlm train", "termlm bakeoff", "termlm export", "termlm bench")


def slow_first(found: list[Command]) -> list[Command]:
    """The commands that load PyTorch (seconds each) first, in page order, then the rest: with
    pytest -n, the workers share out the slow ones first and end together on the quick ones."""
    return sorted(found, key=lambda command: not command.text.startswith(TORCH_COMMANDS))


def capped(text: str) -> str:
    """The command with the placeholders filled and its training budget capped."""
    words = shlex.split(text, comments=True)
    for key, value in PLACEHOLDERS.items():
        text = re.sub(rf"(?<![\w/.-]){re.escape(key)}(?![\w-])", value, text)
    text = MINUTES.sub("--minutes 0.01", text)
    own = ("--minutes", "-m", "--epochs", "--max-steps", "--resume", "--recipe")
    if words[:2] == ["termlm", "train"] and not any(w in words for w in own):
        text = _append(text, "--max-steps 3")
    if words[:2] == ["termlm", "bakeoff"] and not any(w in words for w in own):
        text = _append(text, "--minutes 0.01")  # its default is 2.5 minutes per architecture
    if words[:2] == ["termlm", "bench"] and "--tokens" not in words and "--strategies" not in words:
        text = _append(text, "--tokens 20")  # 200 by default
    if words[:2] == ["termlm", "bakeoff"] and "--resume" not in words and "--archs" not in words:
        text = _append(text, "--archs rnn,transformer")  # two of them: still a leaderboard
    return text


def _append(text: str, options: str) -> str:
    code, hash_, comment = text.partition(" #")
    return code.rstrip() + f" {options}" + (f" #{comment}" if hash_ else "")


def skipped(text: str) -> str | None:
    for prefix, why in NOT_RUN.items():
        if text.strip().startswith(prefix):
            return why
    return None


TEXT = (
    "the king and queen of a fair land spoke to their people with love and fear , while the "
    "night came over hills and the river ran to sea ROMEO JULIET To be or not"
)


def small_text() -> str:
    import random

    rng = random.Random(1)
    words = TEXT.split(" ")
    lines = []
    for _ in range(600):
        words = [rng.choice(words) for _ in range(rng.randint(4, 12))]
        lines.append(" ".join(words).capitalize() + ".")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The placeholders of the pages, made once; each command gets a copy."""
    from termlm.training.loop import TrainingInterrupted, train
    from termlm.training.options import build_options

    root = tmp_path_factory.mktemp("docs") / "work"
    root.mkdir()
    text = small_text()
    for name in ("corpus.txt", "my.txt", "speech.txt", "poems.txt", "tinyshakespeare.txt"):
        (root / name).write_text(text, encoding="utf-8")
    (root / "moved").mkdir()
    (root / "moved" / "corpus.txt").write_text(text, encoding="utf-8")
    (root / "plugins").mkdir()  # FOLDER: a plugin folder with the example plugin in it
    example = ROOT / "examples" / "termlm-plugin-example" / "termlm_plugin_example.py"
    shutil.copy(example, root / "plugins" / example.name)
    tiny = {"hidden": 16, "embed": 8, "context": 16, "batch_size": 4, "threads": 1}
    here = Path.cwd()
    os.chdir(root)  # paths in the run relative to the workspace: each copy stands alone
    try:
        options = build_options(
            corpus="corpus.txt", level=None, arch=None, name="NAME", out="runs", max_steps=6,
            **tiny,
        )  # fmt: skip
        options.stop_after_steps = 3  # an interrupted run: `train --resume runs/NAME` goes on
        with pytest.raises(TrainingInterrupted):
            train(options, show_progress=False)
    finally:
        os.chdir(here)
    for copy in ("A", "B"):
        shutil.copytree(root / "runs" / "NAME", root / "runs" / copy)
    os.chdir(root)  # in this process: torch is loaded already, a new process would load it again
    try:
        for args in (
            ["export", "runs/NAME"],
            ["bakeoff", "corpus.txt", "--name", "NAME", "--archs", "rnn", "--minutes", "0.01"],
        ):
            try:
                main(args)
            except SystemExit as exc:
                assert exc.code in (0, None), args
    finally:
        os.chdir(here)
    return root


def environment(root: Path) -> dict[str, str]:
    env = plain_env(
        XDG_DATA_HOME=str(root.parent / "data"),
        XDG_CONFIG_HOME=str(root.parent / "config"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        OMP_NUM_THREADS="1",  # pytest -n runs commands side by side: one thread pool each
    )
    for name in ("TERMLM_MODELS_DIR", "TERMLM_PLUGINS_DIR", "TERMLM_CONFIG_DIR", "TERMLM_DATA_DIR"):
        env.pop(name, None)
    return env


def all_keys(value: object) -> set[str]:
    """Every key of a JSON value, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for item in value.values() for k in all_keys(item)}
    if isinstance(value, list):
        return {k for item in value for k in all_keys(item)}
    return set()


def check_shown(command: Command, stdout: str) -> None:
    shown = "\n".join(command.shown).strip()
    if not shown:
        return
    if shown[0] in "{[":
        keys = re.findall(r'"([A-Za-z_][A-Za-z_0-9]*)":', shown)
        data = json.loads(stdout.strip().splitlines()[-1] if shown[0] == "{" else stdout)
        missing = sorted(set(keys) - all_keys(data))
        assert not missing, f"{command.id}: keys shown but not printed: {missing}"
        return
    printed = [line.rstrip() for line in stdout.splitlines()]
    for line in command.shown:
        if line.strip():
            assert line.rstrip() in printed, f"{command.id}: the page shows {line!r}"


def test_the_pages_have_commands_to_run() -> None:
    found = all_commands()
    pages = {command.page for command in found}
    assert {"README.md", "exported/README.md", "examples/termlm-plugin-example/README.md"} <= pages
    assert len(found) >= 30


@pytest.mark.slow
@pytest.mark.parametrize("command", slow_first(all_commands()), ids=lambda c: c.id)
def test_a_documented_command_runs(command: Command, workspace: Path, tmp_path: Path) -> None:
    why = skipped(command.text)
    if why:
        pytest.skip(f"not run: {why}")
    work = tmp_path / "work"
    shutil.copytree(workspace, work, symlinks=True)
    (work / "examples").symlink_to(ROOT / "examples")
    line = capped(command.text)
    done = subprocess.run(
        ["bash", "-c", "set -o pipefail; " + line],
        cwd=work,
        env=environment(work),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{command.id}: {line}\n{done.stderr[-2000:]}"
    check_shown(command, done.stdout)
