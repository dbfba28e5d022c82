"""Security: no pickle anywhere, plugins only from the declared places, fuzzed readers.

The hypothesis fuzzing of the metadata reader and the tokenizer loaders lives in
tests/test_modelfile.py and tests/test_tokenizer_json_fuzz.py; here a short atheris run (coverage
guided, when atheris is installed) drives the same readers with raw bytes.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from termlm.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["termlm", "plugins", "benchmarks", "scripts", "examples", "tests"]
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}


def python_files() -> list[Path]:
    files = [p for folder in SCANNED for p in (ROOT / folder).rglob("*.py")]
    return sorted(p for p in files if "build" not in p.parts and ".venv" not in p.parts)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def pickle_uses(source: str) -> list[str]:
    """What in `source` can read or write a pickle, as "line: what"."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in PICKLING_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in PICKLING_MODULES:
                found.append(f"{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name == "torch.load" and not _keyword_is_true(node, "weights_only"):
                found.append(f"{node.lineno}: torch.load without weights_only=True")
            elif name in ("torch.save", "torch.jit.save", "torch.jit.load"):
                found.append(f"{node.lineno}: {name} (pickles)")
            elif name.split(".")[-1] == "load" and _keyword_is_true(node, "allow_pickle"):
                found.append(f"{node.lineno}: {name}(allow_pickle=True)")
            elif name in ("pd.read_pickle", "pandas.read_pickle"):
                found.append(f"{node.lineno}: {name}")
    return found


def test_the_scanner_finds_pickles() -> None:
    bad = textwrap.dedent(
        """
        import pickle
        from dill import loads
        import torch, numpy as np
        torch.load("x.pt")
        torch.load("x.pt", weights_only=False)
        torch.save({}, "x.pt")
        np.load("x.npy", allow_pickle=True)
        torch.load("x.pt", weights_only=True)
        np.load("x.npy")
        """
    )
    assert [line.split(":")[0] for line in pickle_uses(bad)] == ["2", "3", "5", "6", "7", "8"]


def test_no_pickle_anywhere_in_the_code() -> None:
    files = python_files()
    assert len(files) > 50
    problems = {
        str(path.relative_to(ROOT)): uses
        for path in files
        if (uses := pickle_uses(path.read_text(encoding="utf-8")))
    }
    assert problems == {}


def test_a_run_folder_holds_only_json_and_safetensors(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from termlm.training.loop import TrainingInterrupted, train
    from termlm.training.options import build_options

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 30, encoding="utf-8")
    small: dict[str, Any] = {"embed": 8, "hidden": 8, "context": 8, "batch_size": 2, "threads": 1}
    options = build_options(
        corpus=str(corpus), level="char", arch="gru", max_steps=4, out=str(tmp_path), **small
    )
    run_dir = Path(train(options, show_progress=False)["run_dir"])
    interrupted = build_options(
        corpus=str(corpus),
        level="char",
        arch="gru",
        out=str(tmp_path),
        name="stopped",
        max_steps=9,
        stop_after_steps=2,
        **small,
    )
    with pytest.raises(TrainingInterrupted):
        train(interrupted, show_progress=False)
    for folder in (run_dir, tmp_path / "stopped"):
        suffixes = {p.suffix for p in folder.iterdir()}
        assert suffixes <= {".json", ".jsonl", ".safetensors"}, suffixes
        for path in folder.glob("*.safetensors"):
            header = int.from_bytes(path.read_bytes()[:8], "little")
            json.loads(path.read_bytes()[8 : 8 + header])  # a safetensors header: plain JSON


# --------------------------------------------------------------------------- plugin sources

EVIL = """
from typing import ClassVar
from termlm.decoding import hookimpl

class Evil:
    name: ClassVar[str] = "evil"
    description: ClassVar[str] = "Must not load from an undeclared place."
    options: ClassVar[tuple] = ()

    def run(self, ctx):
        yield from ()

@hookimpl
def register_plugins(register):
    register(Evil)
"""


def _plugin_rows(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, str]]:
    try:
        main(["plugins", "--json", *args])
    except SystemExit as exc:
        assert not exc.code
    rows: list[dict[str, str]] = json.loads(capsys.readouterr().out)
    return rows


def test_plugins_load_only_from_declared_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plugin in the working folder, on sys.path or next to the corpus is never run; the same
    file runs from --plugins-dir, TERMLM_PLUGINS_DIR or the user folder, and says so."""
    work = tmp_path / "work"
    for place in (work / "plugins", work, work / "termlm_plugins"):
        place.mkdir(parents=True, exist_ok=True)
        (place / "evil.py").write_text(textwrap.dedent(EVIL))
    (work / "plugins" / "__init__.py").write_text("")
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("TERMLM_PLUGINS_DIR", raising=False)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))

    rows = _plugin_rows(capsys)
    assert "evil" not in {r["name"] for r in rows}
    declared = ("builtin", "entry point ", "user folder ", "folder ")
    assert all(r["source"].startswith(declared) for r in rows), rows
    assert {"greedy", "sample", "beam"} <= {r["name"] for r in rows if r["source"] == "builtin"}

    def source_of_evil(*args: str) -> str:
        return next(r["source"] for r in _plugin_rows(capsys, *args) if r["name"] == "evil")

    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "evil.py").write_text(textwrap.dedent(EVIL))
    assert source_of_evil("--plugins-dir", str(extra)) == f"folder {extra}"
    monkeypatch.setenv("TERMLM_PLUGINS_DIR", str(extra))
    assert source_of_evil() == f"folder {extra}"
    monkeypatch.delenv("TERMLM_PLUGINS_DIR")
    user = config / "termlm" / "plugins"
    user.mkdir(parents=True)
    (user / "evil.py").write_text(textwrap.dedent(EVIL))
    assert source_of_evil() == f"user folder {user}"


# --------------------------------------------------------------------------- atheris

HARNESS = """
import json, sys
import atheris

with atheris.instrument_imports():
    from termlm.errors import TermlmError
    from termlm.modelfile import parse_meta, read_metadata_props, read_model_proto
    from termlm.tokenizers import tokenizer_from_json


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 3)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        if which == 0:
            parse_meta(rest)
        elif which == 1:
            read_metadata_props(rest)
        elif which == 2:
            read_model_proto(rest)
        else:
            try:
                value = json.loads(rest.decode("utf-8", "replace"))
            except ValueError:
                return
            tokenizer_from_json(value)
    except TermlmError as exc:
        assert exc.message  # a refusal in words; anything else escapes and is a crash


atheris.Setup(sys.argv, one_input)
atheris.Fuzz()
"""


def test_atheris_short_run(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    harness = tmp_path / "fuzz_readers.py"
    harness.write_text(HARNESS)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = [
        b"\x00" + json.dumps({"format": 1, "name": "x"}).encode(),
        b"\x03" + json.dumps({"type": "char", "version": 1, "vocab": ["<pad>", "<unk>"]}).encode(),
        b"\x02\x08\x08\x3a\x00",
    ]
    for i, seed in enumerate(seeds):
        (corpus / f"seed{i}").write_bytes(seed)
    proc = subprocess.run(
        [sys.executable, str(harness), "-runs=4000", "-max_len=512", "-seed=1", str(corpus)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 4000 runs" in proc.stderr
