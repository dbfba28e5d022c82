"""When every token is banned: the generation stops with "no_allowed_token", never emitting the
padding token, and every JSON output stays JSON (no NaN, no Infinity)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from termlm.cli.app import main
from termlm.decoding import build_plugin_manager, generate
from termlm.decoding.events import DoneEvent, GenerationResult
from termlm.decoding.loop import NO_ALLOWED_TOKEN
from termlm.decoding.testing import TinyRNN, char_tokenizer
from termlm.jsonout import dumps, finite

TOK = char_tokenizer("abcdefgh")
STRATEGIES = ["greedy", "sample", "beam", "lookahead"]

NAN_PLUGIN = """
from typing import ClassVar
import numpy as np
from termlm.decoding import OptionSpec, hookimpl

class NanScores:
    name: ClassVar[str] = "nan-scores"
    description: ClassVar[str] = "Sets scores to NaN: all of them, or every even token id."
    options: ClassVar[tuple] = (OptionSpec("nan_mode", str, "off", choices=("off", "all", "even")),)

    def __init__(self, nan_mode="off"):
        self.mode = nan_mode
        self.active = nan_mode != "off"

    def process(self, logits, history, info):
        out = logits.copy()
        if self.mode == "all":
            out[:] = np.nan
        else:
            out[:, ::2] = np.nan
        return out

@hookimpl
def register_plugins(register):
    register(NanScores)
"""


@pytest.fixture(scope="module")
def nan_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("nanplugin")
    (folder / "nan_scores.py").write_text(NAN_PLUGIN)
    return folder


def run(strategy: str, options: dict[str, Any], folder: Path | None = None) -> GenerationResult:
    registry = build_plugin_manager(
        plugins_dirs=[folder] if folder else [], entry_points=False, user_dir=False
    )
    events = list(
        generate(
            TinyRNN(TOK.vocab_size),
            TOK,
            "ab",
            registry=registry,
            strategy=strategy,
            options=options,
            max_new_tokens=40,
            seed=3,
        )
    )
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done.result


def assert_clean(result: GenerationResult) -> None:
    assert TOK.pad_id not in result.token_ids and TOK.unk_id not in result.token_ids
    assert all(math.isfinite(lp) for lp in result.logprobs)
    json.dumps(
        {"logprobs": result.logprobs, "n_best": [b.score for b in result.n_best]}, allow_nan=False
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_repeat_unigrams_runs_out_of_tokens(strategy: str) -> None:
    result = run(strategy, {"no_repeat_ngram_size": 1})
    assert result.stop_reason == NO_ALLOWED_TOKEN, result.error
    assert result.error is None
    assert_clean(result)
    # every letter the prompt did not use, once each: then nothing is left
    assert sorted(result.token_ids) == sorted(set(range(2, TOK.vocab_size)) - {2, 3})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nan_scores_everywhere_stop_at_once(strategy: str, nan_folder: Path) -> None:
    result = run(strategy, {"nan_mode": "all"}, nan_folder)
    assert result.stop_reason == NO_ALLOWED_TOKEN and result.token_ids == []
    assert_clean(result)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nan_scores_count_as_banned(strategy: str, nan_folder: Path) -> None:
    result = run(strategy, {"nan_mode": "even"}, nan_folder)
    assert result.stop_reason == "length", result.error
    assert result.token_ids and all(t % 2 == 1 for t in result.token_ids)
    assert_clean(result)


def test_a_strategy_choosing_a_banned_token_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "padder.py").write_text(
        "from typing import ClassVar\n"
        "from termlm.decoding import hookimpl\n"
        "class Padder:\n"
        "    name: ClassVar[str] = 'padder'\n"
        "    description: ClassVar[str] = 'Always the padding token.'\n"
        "    options: ClassVar[tuple] = ()\n"
        "    def run(self, ctx):\n"
        "        while True:\n"
        "            scores = ctx.scores()[0]\n"
        "            ctx.session.feed([0])\n"
        "            yield ctx.choice(scores, 0)\n"
        "@hookimpl\n"
        "def register_plugins(register):\n"
        "    register(Padder)\n"
    )
    result = run("padder", {}, tmp_path)
    assert result.stop_reason == "error" and "banned" in (result.error or "")
    assert result.token_ids == []


def test_finite_maps_infinities_to_null() -> None:
    value = {"a": [1.0, -math.inf, math.nan], "b": (math.inf,), "c": np.float32(-np.inf), "d": 2}
    assert finite(value) == {"a": [1.0, None, None], "b": [None], "c": None, "d": 2}
    assert json.loads(dumps(value)) == {"a": [1.0, None, None], "b": [None], "c": None, "d": 2}


# --------------------------------------------------------------------------- every --json path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str) -> Any:
    def refuse(word: str) -> Any:
        raise AssertionError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    from tiny_onnx import tiny_meta, write_tiny_model

    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", "abcdefgh " * 20)
    vocab = tokenizer.vocab_size
    meta = tiny_meta("rnn", config={**tiny_meta("rnn")["config"], "vocab_size": vocab})
    meta["tokenizer"] = tokenizer.to_json()
    meta["card"] = {"val_loss": math.nan, "params": 10}  # NaN is in Python's JSON dialect
    folder = tmp_path_factory.mktemp("models")
    return write_tiny_model(folder / "tiny.onnx", "rnn", vocab=vocab, meta=meta)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_generate_json_when_every_token_is_banned(
    capsys: pytest.CaptureFixture[str], model_file: Path, strategy: str
) -> None:
    code, out, err = cli(
        capsys,
        "generate",
        str(model_file),
        "-p",
        "ab",
        "-n",
        "40",
        "-d",
        strategy,
        "--set",
        "no_repeat_ngram_size=1",
        "--json",
        "--seed",
        "1",
    )
    assert code == 0, err
    result = strict_json(out)
    assert result["stop_reason"] == NO_ALLOWED_TOKEN
    assert "<pad>" not in result["token_text"]


def test_generate_json_with_nan_everywhere(
    capsys: pytest.CaptureFixture[str], model_file: Path, nan_folder: Path
) -> None:
    code, out, err = cli(
        capsys,
        "generate",
        str(model_file),
        "-p",
        "ab",
        "--plugins-dir",
        str(nan_folder),
        "--set",
        "nan_mode=all",
        "--json",
        "-d",
        "greedy",
    )
    assert code == 0, err
    result = strict_json(out)
    assert result["stop_reason"] == NO_ALLOWED_TOKEN and result["tokens"] == []


def test_every_json_output_is_json(
    capsys: pytest.CaptureFixture[str],
    model_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(model_file.parent))
    (tmp_path / "inf_option.py").write_text(
        "from typing import ClassVar\n"
        "from termlm.decoding import OptionSpec, hookimpl\n"
        "class Unbounded:\n"
        "    name: ClassVar[str] = 'unbounded'\n"
        "    description: ClassVar[str] = 'An option with an infinite bound.'\n"
        "    options: ClassVar[tuple] = (OptionSpec('reach', float, 1.0, min=float('-inf')),)\n"
        "    def __init__(self, reach=1.0):\n"
        "        self.active = False\n"
        "    def process(self, logits, history, info):\n"
        "        return logits\n"
        "@hookimpl\n"
        "def register_plugins(register):\n"
        "    register(Unbounded)\n"
    )
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcdefgh " * 20)
    runs = {
        "models": ["models", "--json"],
        "plugins": ["plugins", "--json", "--plugins-dir", str(tmp_path)],
        "eval": ["eval", str(model_file), str(corpus), "--json"],
        "bench": ["bench", str(model_file), "--tokens", "2", "--json"],
        "generate": ["generate", str(model_file), "-p", "ab", "-n", "3", "--json"],
    }
    for name, args in runs.items():
        code, out, err = cli(capsys, *args)
        assert code == 0, (name, err)
        strict_json(out)
    code, out, _ = cli(capsys, "models", "--json")
    assert strict_json(out)[0]["val_loss"] is None


class _NanLogits:
    """A model whose own logits are NaN: at every id, or at every even id."""

    def __init__(self, mode: str) -> None:
        self.inner = TinyRNN(TOK.vocab_size)
        self.mode = mode

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, tokens: np.ndarray, state: Any) -> Any:
        from dataclasses import replace

        out = self.inner.step(tokens, state)
        logits = np.array(out.logits, dtype=np.float32)
        if self.mode == "all":
            logits[:] = np.nan
        else:
            logits[..., ::2] = np.nan
        return replace(out, logits=logits)


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
@pytest.mark.parametrize("mode", ["all", "even"])
def test_nan_logits_from_the_model_are_banned_with_or_without_alternatives(
    strategy: str, mode: str
) -> None:
    """With no processor at work and no alternatives wanted, greedy and the sampler read the
    logits themselves: a NaN there still counts as banned, as through the processed scores."""
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    results = []
    for alternatives in (0, 5):
        events = list(
            generate(
                _NanLogits(mode),  # type: ignore[arg-type]
                TOK,
                "ab",
                registry=registry,
                strategy=strategy,
                max_new_tokens=30,
                seed=3,
                alternatives=alternatives,
            )
        )
        done = events[-1]
        assert isinstance(done, DoneEvent) and done.result.error is None, done
        assert_clean(done.result)
        results.append(done.result)
    lean, full = results
    assert lean.token_ids == full.token_ids and lean.stop_reason == full.stop_reason
    assert lean.logprobs == pytest.approx(full.logprobs, rel=1e-12, abs=1e-12)
    if mode == "all":
        assert lean.stop_reason == NO_ALLOWED_TOKEN and lean.token_ids == []
    else:
        assert lean.stop_reason == "length" and all(t % 2 == 1 for t in lean.token_ids)
