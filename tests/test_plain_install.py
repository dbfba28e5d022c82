"""`pip install termlm` (no extras) in a fresh virtual environment: the laptop runtime works with
torch absent. Installs from the package registry, so it takes a little while."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from tiny_onnx import write_tiny_model

ROOT = Path(__file__).resolve().parents[1]

# One worker runs them all: the package is built once, and two builds of the same source tree at
# once (pip builds in its build/ folder) would break each other.
pytestmark = pytest.mark.xdist_group("plain-install")


@pytest.fixture(scope="module")
def plain_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("plain") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [
        str(env_dir / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    done = subprocess.run([*pip, str(ROOT)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"pip install of the plain package failed:\n{done.stderr[-3000:]}")
    return env_dir


def run(env_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(env_dir / "bin" / "termlm"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=env_dir,  # not the repository: the installed package must stand alone
        env={**os.environ, **env},
    )


def test_plain_install_has_no_torch(plain_env: Path) -> None:
    probe = subprocess.run(
        [
            str(plain_env / "bin" / "python"),
            "-c",
            "import importlib.util as u; print(u.find_spec('torch'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "None"


def test_plain_install_generates_with_a_model_file(plain_env: Path, tmp_path: Path) -> None:
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", "abcdefgh ij\n")
    model = write_tiny_model(
        tmp_path / "tiny.onnx", "rnn", vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json()
    )
    done = run(
        plain_env, "generate", str(model), "--prompt", "ab", "-n", "12", "--seed", "3", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["tokens"]) == 12


def test_plain_install_finds_the_bundled_models(plain_env: Path, tmp_path: Path) -> None:
    bundled = sorted((ROOT / "exported").glob("*.onnx"))
    if not bundled:
        pytest.skip("no bundled model in exported/")
    done = run(plain_env, "models", "--json", XDG_DATA_HOME=str(tmp_path), TERMLM_MODELS_DIR="")
    assert done.returncode == 0, done.stderr
    models = json.loads(done.stdout)
    assert {m["name"] for m in models} >= {p.stem for p in bundled}
    assert any(m["default"] for m in models)
    done = run(plain_env, "generate", "--prompt", "ROMEO:", "-n", "20", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_plain_install_ships_the_builtins_under_termlms_name(plain_env: Path) -> None:
    """No top-level `plugins` package; the built-ins are termlm's own entry points."""
    done = run(plain_env, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    builtins = {row["name"] for row in json.loads(done.stdout) if row["source"] == "builtin"}
    assert {"greedy", "sample", "beam", "lookahead", "no-repeat-ngram"} <= builtins
    probe = subprocess.run(
        [
            str(plain_env / "bin" / "python"),
            "-c",
            "import importlib.util as u, importlib.metadata as m, json; print(json.dumps("
            "[u.find_spec('plugins') is None, "
            "sorted(e.value for e in m.entry_points(group='termlm.plugins'))]))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=plain_env,
    )
    no_top_level, points = json.loads(probe.stdout)
    assert no_top_level
    assert points == [
        f"termlm.builtin_plugins.{name}"
        for name in ("beam", "greedy", "lookahead", "processors", "sample", "utf8")
    ]
