"""--threads and --seed are checked where they are parsed, on every command that takes them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from termlm.bounds import SEED_MAX, check_seed, check_threads, machine_cores
from termlm.cli.app import main
from termlm.errors import ConfigError

pytest.importorskip("onnx")

from tiny_onnx import write_tiny_model

TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello fox.\n" * 4


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", TEXT)
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    return write_tiny_model(path, "rnn", vocab=tokenizer.vocab_size, tokenizer=tokenizer.to_json())


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_check_seed_takes_exactly_0_to_2_32(value: int) -> None:
    if 0 <= value <= SEED_MAX:
        assert check_seed(value) == value
    else:
        with pytest.raises(
            ConfigError, match=f"--seed must be a whole number from 0 to {SEED_MAX}"
        ):
            check_seed(value)


@given(st.integers(min_value=-(2**20), max_value=2**20))
def test_check_threads_takes_1_to_the_cores(value: int) -> None:
    if 1 <= value <= machine_cores():
        assert check_threads(value) == value
    else:
        with pytest.raises(ConfigError, match=f"between 1 and {machine_cores()}"):
            check_threads(value)


def test_none_means_not_given() -> None:
    assert check_seed(None) is None and check_threads(None) is None
    with pytest.raises(ConfigError):
        check_seed(True)  # type: ignore[arg-type]


def _commands(model: Path, corpus: Path, out: Path) -> dict[str, list[str]]:
    return {
        "train": ["train", str(corpus), "--out", str(out), "--max-steps", "1", "-q"],
        "bakeoff": ["bakeoff", str(corpus), "--out", str(out), "--archs", "rnn"],
        "generate": ["generate", str(model), "-p", "the", "-n", "3"],
        "eval": ["eval", str(model), str(corpus)],
        "bench": ["bench", str(model), "--tokens", "2"],
    }


@pytest.mark.parametrize("command", ["train", "bakeoff", "generate", "eval", "bench"])
@pytest.mark.parametrize("threads", ["0", "-1", "100000"])
def test_threads_beyond_the_cores_are_refused(
    command: str,
    threads: str,
    model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 5)
    args = _commands(model_path, corpus, tmp_path / "runs")[command]
    code, out, err = run(capsys, *args, "--threads", threads)
    assert code == 1 and out == "" and "Traceback" not in err, err
    assert err.splitlines()[0] == (
        f"error: --threads must be between 1 and {machine_cores()} (the CPU cores here), "
        f"got {threads}"
    )
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "bakeoff", "generate"])
@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**64)])
def test_seeds_outside_0_to_2_32_are_refused(
    command: str, seed: str, model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 5)
    args = _commands(model_path, corpus, tmp_path / "runs")[command]
    code, out, err = run(capsys, *args, "--seed", seed)
    assert code == 1 and out == "" and "Traceback" not in err, err
    assert (
        err.splitlines()[0]
        == f"error: --seed must be a whole number from 0 to {SEED_MAX}, got {seed}"
    )
    assert not (tmp_path / "runs").exists()


def test_the_largest_seed_works(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "generate", str(model_path), "-p", "the", "-n", "3", "--seed", str(SEED_MAX)
    )
    assert code == 0 and out, err


def test_the_generation_api_checks_its_seed(model_path: Path) -> None:
    from termlm.decoding import build_plugin_manager, generate
    from termlm.runtime.onnx_model import load_model

    lm = load_model(model_path)
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        generate(
            lm,
            lm.tokenizer,
            "the",
            registry=build_plugin_manager(),
            seed=-1,
            cancel=threading.Event(),
        )


def test_the_chat_panel_takes_the_same_seeds() -> None:
    from termlm.tui.panel import _SeedValidator

    validator = _SeedValidator()
    assert validator.validate(str(SEED_MAX)).is_valid and validator.validate("").is_valid
    assert not validator.validate(str(SEED_MAX + 1)).is_valid
    assert not validator.validate("-1").is_valid
