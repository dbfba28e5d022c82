"""Plugin loading that cannot be turned against the user: no empty folder means "here", the
built-ins are termlm's own package, and a plugin that raises anything is named and left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from termlm.cli.app import main
from termlm.decoding import build_plugin_manager, generate
from termlm.decoding.events import DoneEvent
from termlm.decoding.registry import BUILTIN_PACKAGE, EMPTY_FOLDER, _is_builtin
from termlm.decoding.testing import TinyRNN, char_tokenizer
from termlm.errors import PluginError

ROOT = Path(__file__).resolve().parents[1]
TOK = char_tokenizer("abcdefgh")
TERMLM = Path(sys.executable).with_name("termlm")

PLANTED = """
import pathlib
pathlib.Path({marker!r}).write_text("ran")
from termlm.decoding import hookimpl
class Planted:
    name = "planted"
    description = "Must never load."
    options = ()
    def process(self, logits, history, info):
        return logits
@hookimpl
def register_plugins(register):
    register(Planted)
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def planted_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A current folder holding conftest.py, sitecustomize.py and a plugin-looking file, each of
    which leaves a marker file when it runs."""
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "ran.txt"
    for name in ("conftest.py", "sitecustomize.py", "evil.py"):
        (work / name).write_text(textwrap.dedent(PLANTED.format(marker=str(marker))))
    return work, marker


def names(registry: Any) -> set[str]:
    return {info.name for info in registry.infos() if info.error is None}


def test_an_empty_plugin_folder_is_never_the_current_folder(
    planted_folder: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    work, marker = planted_folder
    monkeypatch.chdir(work)
    monkeypatch.setenv("TERMLM_PLUGINS_DIR", os.pathsep.join(["", " "]))
    registry = build_plugin_manager(plugins_dirs=[""], entry_points=False, user_dir=False)
    assert "planted" not in names(registry) and not marker.exists()
    empty = [i for i in registry.infos() if i.kind == "folder"]
    assert len(empty) == 3 and all(i.error == EMPTY_FOLDER for i in empty)
    assert {"greedy", "sample"} <= names(registry)


@pytest.mark.skipif(not TERMLM.exists(), reason="the termlm script is not installed here")
@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["generate", "--plugins-dir", ""], {}),
        (["plugins", "--json", "--plugins-dir", ""], {}),
        (["generate"], {"TERMLM_PLUGINS_DIR": os.pathsep}),
    ],
    ids=["generate-flag", "plugins-flag", "generate-env"],
)
def test_nothing_in_the_current_folder_runs(
    planted_folder: tuple[Path, Path], args: list[str], env: dict[str, str]
) -> None:
    """The commands as a user runs them (the installed script, from the planted folder)."""
    work, marker = planted_folder
    extra = ["-p", "ab", "-n", "3", "--seed", "1"] if args[0] == "generate" else []
    done = subprocess.run(
        [str(TERMLM), *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), "a file from the current folder ran"
    assert "planted" not in done.stdout and "Traceback" not in done.stderr
    if args[0] == "generate":
        assert "never means the current folder" in done.stderr


# --------------------------------------------------------------------------- the built-ins' package


def test_builtins_are_termlms_own_modules() -> None:
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    builtins = [i for i in registry.infos() if i.source == "builtin"]
    assert {"greedy", "sample", "beam", "lookahead", "no-repeat-ngram"} <= {
        i.name for i in builtins
    }
    for info in builtins:
        assert info.cls is not None
        assert info.cls.__module__.startswith(BUILTIN_PACKAGE + "."), info.cls.__module__


def test_pyproject_declares_the_builtins_as_entry_points() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    assert "plugins" not in setuptools["packages"]
    assert setuptools["package-dir"][BUILTIN_PACKAGE] == "plugins"
    points = project["project"]["entry-points"]["termlm.plugins"]
    modules = {p.stem for p in (ROOT / "plugins").glob("*.py") if not p.stem.startswith("_")}
    assert set(points) == modules
    assert all(value == f"{BUILTIN_PACKAGE}.{name}" for name, value in points.items())


def _ep(value: str, dist: str | None) -> Any:
    return SimpleNamespace(value=value, dist=SimpleNamespace(name=dist) if dist else None)


def test_only_termlms_own_entry_points_are_builtins() -> None:
    assert _is_builtin(_ep("termlm.builtin_plugins.greedy", "termlm"))
    assert not _is_builtin(_ep("termlm.builtin_plugins.greedy", "someone-else"))
    assert not _is_builtin(_ep("plugins.greedy", "termlm"))
    assert not _is_builtin(_ep("termlm.builtin_plugins.greedy", None))


def test_another_distributions_plugins_package_is_not_a_builtin(tmp_path: Path) -> None:
    """Another package's top-level `plugins/x.py`, importable, never runs as a built-in."""
    site = tmp_path / "site"
    package = site / "plugins"
    package.mkdir(parents=True)
    marker = tmp_path / "ran.txt"
    (package / "__init__.py").write_text("")
    (package / "stranger.py").write_text(textwrap.dedent(PLANTED.format(marker=str(marker))))
    script = (
        "import json, plugins\n"
        "from termlm.decoding import build_plugin_manager\n"
        "r = build_plugin_manager(user_dir=False)\n"
        "print(json.dumps([[i.name, i.source] for i in r.infos()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert ["greedy", "builtin"] in rows
    assert "planted" not in {name for name, _ in rows}
    assert not marker.exists()


# --------------------------------------------------------------------------- plugins that raise

BROKEN = """
from typing import ClassVar
from termlm.decoding import OptionSpec, hookimpl

class StartFails:
    name: ClassVar[str] = "start-fails"
    description: ClassVar[str] = "A strategy whose constructor raises."
    options: ClassVar[tuple] = ()
    def __init__(self):
        raise RuntimeError("no GPU here")
    def run(self, ctx):
        yield from ()

class RunRaises:
    name: ClassVar[str] = "run-raises"
    description: ClassVar[str] = "run() is a plain function that raises."
    options: ClassVar[tuple] = ()
    def run(self, ctx):
        raise KeyError("boom")

class RunReturnsNone:
    name: ClassVar[str] = "run-none"
    description: ClassVar[str] = "run() returns None."
    options: ClassVar[tuple] = ()
    def run(self, ctx):
        return None

class ProcFails:
    name: ClassVar[str] = "proc-fails"
    description: ClassVar[str] = "A processor whose constructor raises."
    options: ClassVar[tuple] = (OptionSpec("fail_kind", str, "runtime"),)
    def __init__(self, fail_kind="runtime"):
        if fail_kind == "runtime":
            raise RuntimeError("cannot open its word list")
        if fail_kind == "value":
            raise ValueError("fail_kind 'value' is refused")
        if fail_kind == "exit":
            raise SystemExit(3)
    def process(self, logits, history, info):
        return logits

@hookimpl
def register_plugins(register):
    for cls in (StartFails, RunRaises, RunReturnsNone, ProcFails):
        register(cls)
"""


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("broken")
    (folder / "broken.py").write_text(textwrap.dedent(BROKEN))
    return folder


def run(broken_folder: Path, strategy: str, options: dict[str, Any] | None = None) -> Any:
    registry = build_plugin_manager(
        plugins_dirs=[broken_folder], entry_points=False, user_dir=False
    )
    events = generate(
        TinyRNN(TOK.vocab_size),
        TOK,
        "ab",
        registry=registry,
        strategy=strategy,
        options=options or {},
        max_new_tokens=5,
        seed=1,
    )
    done = list(events)[-1]
    assert isinstance(done, DoneEvent)
    return registry, done.result


def test_a_strategy_constructor_raising_anything_is_named(broken_folder: Path) -> None:
    with pytest.raises(PluginError) as info:
        run(broken_folder, "start-fails")
    assert "'start-fails' failed to start: RuntimeError: no GPU here" in info.value.message


@pytest.mark.parametrize(
    ("strategy", "needle"),
    [("run-raises", "KeyError: 'boom'"), ("run-none", "TypeError")],
)
def test_a_run_that_is_not_a_generator(broken_folder: Path, strategy: str, needle: str) -> None:
    _, result = run(broken_folder, strategy)
    assert result.stop_reason == "error" and needle in (result.error or "")
    assert f"plugin {strategy!r} failed" in (result.error or "")


def test_a_processor_constructor_raising_is_left_out(broken_folder: Path) -> None:
    registry, result = run(broken_folder, "greedy")
    assert result.stop_reason == "length" and len(result.token_ids) == 5
    assert any("'proc-fails'" in s and "RuntimeError" in s for s in registry.skipped)
    info = next(i for i in registry.infos() if i.name == "proc-fails")
    assert info.error and "cannot be built" in info.error


@pytest.mark.parametrize("kind", ["value", "exit"])
def test_a_processor_failing_on_a_value_the_user_set_is_refused(
    broken_folder: Path, kind: str
) -> None:
    with pytest.raises(PluginError, match="proc-fails"):
        run(broken_folder, "greedy", {"fail_kind": kind})


def test_cli_goes_on_without_a_broken_processor(
    capsys: pytest.CaptureFixture[str], broken_folder: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    from tiny_onnx import tiny_meta, write_tiny_model

    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", "abcdefgh " * 10)
    vocab = tokenizer.vocab_size
    meta = tiny_meta("rnn", config={**tiny_meta("rnn")["config"], "vocab_size": vocab})
    meta["tokenizer"] = tokenizer.to_json()
    model = write_tiny_model(tmp_path / "m.onnx", "rnn", vocab=vocab, meta=meta)
    base = ["generate", str(model), "-p", "ab", "-n", "4", "--plugins-dir", str(broken_folder)]
    code, out, err = cli(capsys, *base, "--json")
    assert code == 0, err
    assert json.loads(out)["stop_reason"] == "length"
    assert "warning: processor 'proc-fails'" in err and "generating without it" in err
    for strategy, needle in [
        ("start-fails", "failed to start: RuntimeError"),
        ("run-raises", "KeyError"),
        ("run-none", "TypeError"),
    ]:
        code, out, err = cli(capsys, *base, "-d", strategy)
        assert code == 1 and "Traceback" not in err, err
        assert needle in err and err.count("\n") <= 3
