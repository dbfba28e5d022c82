"""The command line as people expect one: help, examples, completion, colour, clean pipes."""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest
from cli_helpers import plain_env, run, termlm, write_models

from termlm.cli.app import command
from termlm.cli.color import styled, take_no_color_flag, use_colour
from termlm.cli.examples import EXAMPLES
from termlm.cli.helpfmt import reflow

ANSI = re.compile(r"\x1b\[[0-9;]*m")
COMMANDS = sorted(command().commands)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def columns80(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.mark.usefixtures("columns80")
@pytest.mark.parametrize("name", COMMANDS)
def test_every_help_shows_flags_as_flags_and_ends_with_examples(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = run(capsys, name, "--help")
    assert code == 0, err
    assert "<bool>" not in out and "<list" not in out
    assert not ANSI.search(out)
    assert all(len(line) <= 80 for line in out.splitlines())
    lines = [line.strip() for line in out.rstrip().splitlines()]
    examples = lines[lines.index("Examples:") + 1 :]
    assert examples == [f"$ {line}" for line in EXAMPLES[name]]
    for line in examples:  # every example names a real command and fits on one line
        assert line.startswith(f"$ termlm {name}") or f"| termlm {name}" in line


def test_every_command_has_examples() -> None:
    assert set(EXAMPLES) == set(COMMANDS)
    for lines in EXAMPLES.values():
        assert 1 <= len(lines) <= 2
        assert all(len(line) <= 76 for line in lines)  # "$ " and the margins at 80 columns


@pytest.mark.usefixtures("columns80")
def test_root_help_lists_every_summary_whole(capsys: pytest.CaptureFixture[str]) -> None:
    """The commands panel at 80 columns carries each command's first paragraph, uncut, and
    breaks a summary's line only where the next word would not fit."""
    code, out, _ = run(capsys, "--help")
    assert code == 0
    panel = out[out.index("╭─ Training") :].splitlines()  # two panels: train extra, plain
    rows: dict[str, list[str]] = {}
    current, start = "", 0
    for line in panel:
        if not line.startswith("│"):
            continue
        head = line[1:].split()[0] if line[1:].strip() else ""
        if head in COMMANDS and line[2:].startswith(head):
            current = head
            start = line.index(head) + len(head)
            start += len(line[start:]) - len(line[start:].lstrip())
            rows[current] = []
        end = line.rindex("│")
        rows[current].append(line[start:end].rstrip())
        width = end - start - 1  # the column's width, less its right padding
    assert set(rows) == set(COMMANDS)
    for name, parts in rows.items():
        help_text = command().commands[name].help or ""
        first = reflow(help_text).split("\n\n")[0]
        assert " ".join(" ".join(parts).split()) == " ".join(first.split()), name
        for this, following in itertools.pairwise(parts):
            assert len(this) + 1 + len(following.split()[0]) > width, (name, this)
        assert all(part.strip() for part in parts), name


def test_the_root_help_in_a_real_pipe(tmp_path: Path) -> None:
    proc = termlm("--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert not ANSI.search(proc.stdout) and "<bool>" not in proc.stdout
    assert all(len(line) <= 80 for line in proc.stdout.splitlines())
    for flag in ("--no-color", "--install-completion", "--show-completion", "--version"):
        assert flag in proc.stdout
    assert "score" in proc.stdout


def test_show_completion_prints_each_shells_script(tmp_path: Path) -> None:
    env = plain_env(
        _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"
    )  # the shell named, not guessed
    for shell, needle in (("bash", "COMP_WORDS"), ("zsh", "#compdef termlm"), ("fish", "complete")):
        proc = termlm("--show-completion", shell, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "_TERMLM_COMPLETE" in proc.stdout and needle in proc.stdout, shell


def test_zsh_completes_model_names(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    write_models(folder)
    env = plain_env(
        TERMLM_MODELS_DIR=str(folder),
        XDG_DATA_HOME=str(tmp_path / "data"),
        _TERMLM_COMPLETE="complete_zsh",
        _TYPER_COMPLETE_ARGS="termlm score char-r",
    )
    proc = termlm(cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "char-rnn" in proc.stdout and "char-memory" not in proc.stdout


def _complete(words: str, tmp_path: Path, **env: str) -> list[str]:
    count = len(words.split()) - (0 if words.endswith(" ") else 1)
    proc = termlm(
        cwd=tmp_path,
        env=plain_env(
            _TERMLM_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(count), **env
        ),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_offers_installed_models_and_strategies(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    paths = write_models(folder)
    for path in paths.values():
        path.rename(folder / f"alpha-{path.name}")
    (folder / "broken.onnx").write_bytes(b"not a model")
    env = {"TERMLM_MODELS_DIR": str(folder), "XDG_DATA_HOME": str(tmp_path / "data")}
    offered = _complete("termlm generate alpha-", tmp_path, **env)
    assert offered == ["alpha-char-memory", "alpha-char-rnn", "alpha-char-window"]
    assert "broken" not in _complete("termlm score ", tmp_path, **env)
    assert _complete("termlm score x --compare alpha-char-r", tmp_path, **env) == ["alpha-char-rnn"]
    assert _complete("termlm generate -d gr", tmp_path, **env) == ["greedy"]
    assert {"beam", "greedy", "sample"} <= set(_complete("termlm generate --decoder ", tmp_path))
    assert _complete("termlm train x.txt --level c", tmp_path) == ["char"]


# --------------------------------------------------------------------------- colour


def test_no_color_flag_anywhere_sets_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "")  # recorded, so the value the flag sets is undone after
    args = ["generate", "--no-color", "-p", "hi", "--", "--no-color"]
    assert take_no_color_flag(args) == ["generate", "-p", "hi", "--", "--no-color"]
    import os

    assert os.environ["NO_COLOR"] == "1"


def test_colour_only_on_terminals_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(FakeTerminal()) and not use_colour(io.StringIO())
    assert ANSI.search(styled("error: x", FakeTerminal(), fg="red"))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(FakeTerminal())
    assert styled("error: x", FakeTerminal(), fg="red") == "error: x"
    monkeypatch.setenv("NO_COLOR", "")  # empty: not set, as no-color.org says
    assert use_colour(FakeTerminal())


def test_training_progress_honours_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    from termlm.training.progress import TrainProgress

    monkeypatch.setenv("NO_COLOR", "1")
    progress = TrainProgress(enabled=True, total_steps=10, budget_seconds=None)
    assert progress.console.no_color
    progress.console = type(progress.console)(file=FakeTerminal(), force_terminal=True, width=80)
    assert progress.console.no_color  # a console made later, as the bar's own, honours it too
    record = {"step": 1, "train_loss": 2.5, "val_loss": 2.0, "val_ppl": 7.4, "sample": "hi"}
    progress.log_validation(record, True)
    shown = progress.console.file.getvalue()  # type: ignore[attr-defined]
    assert "val 2.0000" in shown and not re.search(r"\x1b\[3[0-9]", shown)


def test_no_color_anywhere_on_a_real_command_line(tmp_path: Path) -> None:
    env = plain_env()
    env.pop("NO_COLOR")
    proc = termlm("plugins", "--no-color", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "greedy" in proc.stdout and not ANSI.search(proc.stdout)


def test_errors_go_to_stderr_and_stdout_stays_clean(tmp_path: Path) -> None:
    proc = termlm("generate", "no-such-model", "-p", "hi", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_typers_cli_runner_sees_the_same_help_and_output(tmp_path: Path) -> None:
    """The help classes are part of the commands themselves, not of `main`: a CliRunner (as a
    plugin author or a tool would use) gets flags as flags, examples and clean pipes too."""
    from typer.testing import CliRunner

    from termlm.cli.app import app

    command()  # the commands registered
    runner = CliRunner()
    env = {"COLUMNS": "80", "NO_COLOR": "1"}
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"], env=env)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "Examples:" in result.output
        assert all(len(line) <= 80 for line in result.output.splitlines())
    model = write_models(tmp_path)["char-rnn"]
    result = runner.invoke(app, ["score", str(model), "hi fox"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len("hi fox") + 1 and "bpc" in lines[-1]
    assert not ANSI.search(result.stdout)
