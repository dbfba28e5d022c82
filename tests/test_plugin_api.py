"""The plugin SDK: termlm.plugin_api is complete and documented, docs/plugin-api.md is generated
from it and current, the tutorial in docs/plugins.md runs as it stands in the page, and the
example package uses the public API only."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cli_helpers import ROOT, plain_env, termlm, write_models

import termlm.plugin_api as api

TUTORIAL = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "examples" / "termlm-plugin-example" / "termlm_plugin_example.py"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def reference_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "plugin_api_reference", ROOT / "scripts" / "plugin_api_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_page_is_generated_from_the_module_and_current() -> None:
    script = reference_script()
    page = (ROOT / "docs" / "plugin-api.md").read_text("utf-8")
    assert page == script.render(), (
        "docs/plugin-api.md is stale: run python scripts/plugin_api_reference.py"
    )
    for name in api.__all__:
        assert f"`{name}" in page, name


def test_every_public_name_is_documented() -> None:
    for name in api.__all__:
        obj = getattr(api, name)
        if name == "API_VERSION":
            assert isinstance(obj, tuple) and len(obj) == 2
            continue
        if name == "hookimpl":
            continue
        assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_the_sdk_imports_nothing_heavy() -> None:
    """A plugin module imports termlm.plugin_api at load: no onnxruntime, torch or Textual."""
    import subprocess

    code = (
        "import sys, termlm.plugin_api; "
        "print([m for m in ('torch', 'onnxruntime', 'textual') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=plain_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def tutorial_blocks() -> tuple[dict[str, str], list[str]]:
    """The page's Python blocks: files (`# file: NAME.py` on the first line) and snippets."""
    files: dict[str, str] = {}
    snippets: list[str] = []
    for match in PYTHON_BLOCK.finditer(TUTORIAL.read_text("utf-8")):
        code = match[1]
        first = code.splitlines()[0]
        if first.startswith("# file: "):
            files[first.removeprefix("# file: ").strip()] = code
        else:
            snippets.append(code)
    return files, snippets


def test_the_tutorial_has_its_plugins_and_snippets() -> None:
    files, snippets = tutorial_blocks()
    assert set(files) == {"vowels.py", "coin.py"}
    assert len(snippets) == 2  # testing without a model; generation from Python
    for code in [*files.values(), *snippets]:
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("termlm"):
                assert node.module == "termlm.plugin_api", node.module


def test_the_tutorial_code_runs_as_it_stands_in_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (ROOT / "exported" / "shakespeare-char.onnx").is_file():
        pytest.skip("the bundled model is not in exported/")
    files, snippets = tutorial_blocks()
    for name, code in files.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("TERMLM_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("TERMLM_MODELS_DIR", raising=False)
    for module in ("vowels", "coin"):
        sys.modules.pop(module, None)
    for code in snippets:
        namespace: dict[str, object] = {"__name__": "__tutorial__"}
        exec(compile(code, str(TUTORIAL), "exec"), namespace)
    state = namespace["state"]
    assert isinstance(state, dict) and state  # the Python generation ran to its DoneEvent
    assert capsys.readouterr().out  # and streamed text


def test_the_tutorial_plugins_load_in_the_cli(tmp_path: Path) -> None:
    files, _ = tutorial_blocks()
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, code in files.items():
        (folder / name).write_text(code, encoding="utf-8")
    model = write_models(tmp_path)["char-rnn"]
    env = plain_env(TERMLM_MODELS_DIR=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("TERMLM_PLUGINS_DIR", None)
    done = termlm("plugins", "--plugins-dir", str(folder), "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["vowel-bias"]["error"] is None and rows["vowel-bias"]["kind"] == "processor"
    assert rows["coin"]["error"] is None and rows["coin"]["kind"] == "strategy"
    args = ["generate", str(model), "-p", "the", "-n", "12", "--seed", "1", "--json"]
    args += ["-d", "coin", "--set", "vowel_bias=2", "--plugins-dir", str(folder)]
    done = termlm(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["tokens"]) == 12


def test_the_example_package_uses_the_public_api_only(tmp_path: Path) -> None:
    tree = ast.parse(EXAMPLE.read_text("utf-8"))
    modules = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("termlm")
    }
    assert modules == {"termlm.plugin_api"}
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / EXAMPLE.name).write_text(EXAMPLE.read_text("utf-8"), encoding="utf-8")
    model = write_models(tmp_path)["char-rnn"]
    env = plain_env(XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("TERMLM_PLUGINS_DIR", None)
    args = ["generate", str(model), "-p", "the", "-n", "8", "--seed", "1", "--json"]
    args += ["-d", "alternate", "--set", "shout=3", "--plugins-dir", str(folder)]
    done = termlm(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["tokens"]) == 8
