"""The plain install (no torch): the training commands say in one line what to install, `--help`
marks them, and `bench --run` says why its torch column is empty. Also: `--debug` anywhere, and
one size unit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ROOT, run, write_models

from termlm.cli.app import take_debug_flag
from termlm.cli.extras import INSTALL
from termlm.units import file_size

# A fresh interpreter in which torch cannot be imported, as after `pip install termlm`.
NO_TORCH = """
import sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")
        return None

sys.meta_path.insert(0, _Block())
sys.argv = ["termlm", *{args!r}]
from termlm.cli.app import main
main()
"""


def without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "100"}
    env.update(TERMLM_MODELS_DIR=str(cwd), XDG_DATA_HOME=str(cwd / "data"))
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH.format(args=list(args))],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["train", "corpus.txt"],
        ["train", "--recipe", "tutorial"],
        ["bakeoff", "corpus.txt"],
        ["export", "runs/NAME"],
        ["train", "corpus.txt", "--level", "word", "--minutes", "1"],
    ],
)
def test_training_commands_without_torch_say_what_to_install(
    args: list[str], tmp_path: Path
) -> None:
    (tmp_path / "corpus.txt").write_text("hello there\n" * 50, encoding="utf-8")
    done = without_torch(*args, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: termlm {args[0]} needs the train extra")
    assert lines[0].endswith(INSTALL)
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_help_marks_the_commands_that_need_the_train_extra(tmp_path: Path) -> None:
    done = without_torch("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    panel, plain = done.stdout.split("Commands (no PyTorch needed)")
    assert "needs the train extra: pip install 'termlm[train]'" in panel
    for name in ("train", "bakeoff", "export"):
        assert f"│ {name} " in panel and f"│ {name} " not in plain
    for name in ("generate", "chat", "models", "eval"):
        assert f"│ {name} " in plain


def test_bench_with_a_run_says_why_the_torch_column_is_empty(tmp_path: Path) -> None:
    model = write_models(tmp_path)["char-rnn"]
    (tmp_path / "run").mkdir()
    done = without_torch("bench", str(model), "--tokens", "4", "--run", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "torch_tokens_per_s" in done.stdout
    assert "note: torch_tokens_per_s is empty" in done.stderr
    assert INSTALL in done.stderr


def test_debug_is_taken_from_anywhere_before_a_double_dash() -> None:
    assert take_debug_flag(["generate", "M", "--debug", "-p", "x"]) == (
        ["generate", "M", "-p", "x"],
        True,
    )
    assert take_debug_flag(["--debug", "models"]) == (["models"], True)
    assert take_debug_flag(["generate", "--", "--debug"]) == (["generate", "--", "--debug"], False)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_after_the_subcommand_shows_the_traceback(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from termlm.errors import ModelFileError

    monkeypatch.setenv("TERMLM_MODELS_DIR", str(tmp_path))
    args = ["generate", "no-such-model", "-p", "x"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    with pytest.raises(ModelFileError):
        run(capsys, *args)
    code, _, err = run(capsys, *args[:-1] if where == "after" else args[1:])
    assert code == 1 and "no model named" in err


def test_one_size_unit_decimal_megabytes() -> None:
    assert file_size(4_892_567) == "4.9 MB"
    assert file_size(14_476_342) == "14.5 MB"
    assert file_size(2_463_533) == "2.5 MB"
    assert file_size(41_000) == "41 KB"
    assert file_size(999) == "999 B"
    assert file_size(1_500_000_000) == "1.5 GB"


def test_models_and_the_docs_give_the_same_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`termlm models` prints each bundled file's size as the README and the cards do."""
    bundled = sorted((ROOT / "exported").glob("*.onnx"))
    if not bundled:
        pytest.skip("no bundled model in exported/")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "models")
    assert code == 0
    docs = (ROOT / "README.md").read_text("utf-8") + (ROOT / "exported" / "README.md").read_text(
        "utf-8"
    )
    for path in bundled:
        size = file_size(path.stat().st_size)
        assert size in out
        assert size in docs, f"{path.name}: {size} is not what the docs say"
    assert "MiB" not in docs
