"""The laptop path never imports torch: `termlm --help`, `models`, `generate` and `eval`.

Each command runs in a fresh interpreter that reports, at exit, which heavy modules it loaded;
and once more with torch made impossible to import, as on a machine without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from tiny_onnx import write_tiny_model

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnxruntime", "textual", "onnx", "tokenizers")

PROBE = """
import atexit, json, sys

BLOCK = {block!r}

class _Block:
    def find_spec(self, name, path=None, target=None):
        if BLOCK and (name == "torch" or name.startswith("torch.")):
            raise ImportError("torch is not installed here")
        return None

sys.meta_path.insert(0, _Block())

def _report():
    loaded = sorted(m for m in {heavy!r} if m in sys.modules)
    sys.__stderr__.write("LOADED=" + json.dumps(loaded) + "\\n")

atexit.register(_report)
sys.argv = ["termlm", *{args!r}]
from termlm.cli.app import main
main()
"""


def loaded_modules(args: list[str], tmp_path: Path, *, block_torch: bool = False) -> list[str]:
    code = PROBE.format(block=block_torch, heavy=HEAVY, args=args)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TERMLM_MODELS_DIR": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED="))
    loaded: list[str] = json.loads(line.removeprefix("LOADED="))
    return loaded


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", "hello there, general kenobi\n" * 3)
    folder = tmp_path_factory.mktemp("models")
    write_tiny_model(
        folder / "tiny.onnx", "rnn", vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json()
    )
    (folder / "corpus.txt").write_text("hello there, general kenobi\n" * 20, encoding="utf-8")
    return folder


def test_help_imports_nothing_heavy(model_dir: Path) -> None:
    assert loaded_modules(["--help"], model_dir) == []


def test_models_reads_metadata_without_a_session(model_dir: Path) -> None:
    assert loaded_modules(["models", "--json"], model_dir) == []


@pytest.mark.parametrize("block_torch", [False, True])
def test_generate_without_torch(model_dir: Path, block_torch: bool) -> None:
    args = ["generate", "tiny", "-p", "hello", "-n", "5", "--seed", "1"]
    loaded = loaded_modules(args, model_dir, block_torch=block_torch)
    assert "torch" not in loaded and "textual" not in loaded and "onnx" not in loaded
    assert "onnxruntime" in loaded  # it did run the model


def test_eval_without_torch(model_dir: Path) -> None:
    args = ["eval", "tiny", str(model_dir / "corpus.txt"), "--json"]
    loaded = loaded_modules(args, model_dir, block_torch=True)
    assert "torch" not in loaded and "onnxruntime" in loaded


def test_score_without_torch(model_dir: Path) -> None:
    args = ["score", "tiny", "hello there", "--compare", "tiny", "--json"]
    loaded = loaded_modules(args, model_dir, block_torch=True)
    assert "torch" not in loaded and "textual" not in loaded and "onnxruntime" in loaded
