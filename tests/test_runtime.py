"""The onnxruntime StepModel, model discovery and numpy evaluation, on tiny model files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from termlm.bounds import machine_cores
from termlm.errors import ConfigError, ModelFileError
from termlm.runtime.evaluation import iter_eval_chunks, iter_window_examples
from termlm.runtime.onnx_model import OnnxLanguageModel, load_model
from termlm.runtime.registry import find_models, resolve_model
from termlm.runtime.scoring import evaluate_ids, token_nll
from termlm.runtime.types import StepModel, reorder_state

pytest.importorskip("onnx")

from tiny_onnx import CONTEXT, HIDDEN, VOCAB, build_tiny_model, tiny_meta, write_tiny_model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OnnxLanguageModel]:
    folder = tmp_path_factory.mktemp("models")
    return {
        kind: load_model(write_tiny_model(folder / f"{kind}.onnx", kind))
        for kind in ("rnn", "memory", "window")
    }


def ids(*rows: list[int]) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


def test_is_a_step_model(models: dict[str, OnnxLanguageModel]) -> None:
    model: StepModel = models["rnn"]
    assert model.vocab_size == VOCAB and model.context == CONTEXT and model.stateful
    assert not models["window"].stateful
    assert models["rnn"].name == "tiny-rnn"


def test_initial_state_shapes(models: dict[str, OnnxLanguageModel]) -> None:
    assert models["rnn"].initial_state(3)["h"].shape == (1, 3, HIDDEN)
    assert models["memory"].initial_state(2)["mem"].shape == (2, 0, HIDDEN)
    assert models["window"].initial_state(2) == {}
    assert models["memory"].state_batch_axes() == {"mem": 0}
    assert models["memory"].state_time_axes() == {"mem": 1}
    assert models["rnn"].state_time_axes() == {}


@pytest.mark.parametrize("kind", ["rnn", "memory"])
def test_step_shapes_and_extras(models: dict[str, OnnxLanguageModel], kind: str) -> None:
    model = models[kind]
    out = model.step(ids([1, 2, 3], [4, 5, 6]), model.initial_state(2))
    assert out.logits.shape == (2, 3, VOCAB) and out.logits.dtype == np.float32
    if kind == "rnn":
        assert out.extras["hidden"].shape == (2, 3, HIDDEN)
        assert out.state["h"].shape == (1, 2, HIDDEN)
    else:
        assert out.state["mem"].shape == (2, 3, HIDDEN)


@pytest.mark.parametrize("kind", ["rnn", "memory"])
def test_state_carries_between_steps(models: dict[str, OnnxLanguageModel], kind: str) -> None:
    """Prefill in one call == one token per call with the state carried."""
    model = models[kind]
    tokens = ids([3, 7, 2, 9, 4])
    whole = model.step(tokens, model.initial_state(1))
    state = model.initial_state(1)
    pieces = []
    for t in range(tokens.shape[1]):
        out = model.step(tokens[:, t : t + 1], state)
        pieces.append(out.logits)
        state = out.state
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole.logits, atol=1e-5)
    for name in state:
        np.testing.assert_allclose(state[name], whole.state[name], atol=1e-5)
    # and the state matters: the same token after different histories scores differently
    other = model.step(ids([5]), model.step(ids([8, 8]), model.initial_state(1)).state)
    again = model.step(ids([5]), model.step(ids([1, 2]), model.initial_state(1)).state)
    assert not np.allclose(other.logits, again.logits)


@pytest.mark.parametrize("kind", ["rnn", "memory", "window"])
def test_batch_rows_are_independent(models: dict[str, OnnxLanguageModel], kind: str) -> None:
    model = models[kind]
    batch = model.step(ids([1, 2, 3], [6, 5, 4]), model.initial_state(2)).logits
    for row, tokens in enumerate(([1, 2, 3], [6, 5, 4])):
        single = model.step(ids(tokens), model.initial_state(1)).logits
        np.testing.assert_allclose(batch[row], single[0], atol=1e-5)


def test_reorder_state_picks_rows(models: dict[str, OnnxLanguageModel]) -> None:
    model = models["memory"]
    out = model.step(ids([1, 2], [3, 4]), model.initial_state(2))
    swapped = reorder_state(out.state, model.state_batch_axes(), np.array([1, 1, 0]))
    assert swapped["mem"].shape == (3, 2, HIDDEN)
    next_logits = model.step(ids([5], [5], [5]), swapped).logits
    alone = model.step(ids([5]), reorder_state(out.state, {"mem": 0}, np.array([1]))).logits
    np.testing.assert_allclose(next_logits[0], alone[0], atol=1e-5)
    np.testing.assert_allclose(next_logits[0], next_logits[1], atol=1e-6)


def test_one_dimensional_tokens_are_one_row(models: dict[str, OnnxLanguageModel]) -> None:
    model = models["rnn"]
    a = model.step(np.array([1, 2]), model.initial_state(1)).logits
    b = model.step(ids([1, 2]), model.initial_state(1)).logits
    np.testing.assert_array_equal(a, b)


def test_window_model_pads_and_cuts(models: dict[str, OnnxLanguageModel]) -> None:
    model = models["window"]
    short = ids([4, 5, 6])
    padded = np.concatenate([np.zeros((1, CONTEXT - 3), dtype=np.int64), short], axis=1)
    a = model.step(short, {}).logits
    assert a.shape == (1, 1, VOCAB)
    np.testing.assert_allclose(a, model.step(padded, {}).logits)
    long = np.arange(CONTEXT + 5, dtype=np.int64)[None] % VOCAB
    np.testing.assert_allclose(
        model.step(long, {}).logits, model.step(long[:, -CONTEXT:], {}).logits
    )


def test_threads_option(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.onnx", "rnn")
    assert load_model(path).session.get_session_options().intra_op_num_threads == 1
    two = min(2, machine_cores())
    assert load_model(path, threads=two).session.get_session_options().intra_op_num_threads == two
    for threads in (0, machine_cores() + 1):
        with pytest.raises(ConfigError, match="--threads must be between 1 and"):
            load_model(path, threads=threads)


def test_graph_that_does_not_match_its_metadata(tmp_path: Path) -> None:
    meta = tiny_meta("rnn")
    meta["state"] = [{"name": "x", "shape": [1, "batch", 8], "batch_axis": 1, "time_axis": None}]
    path = write_tiny_model(tmp_path / "m.onnx", "rnn", meta=meta)
    with pytest.raises(ModelFileError, match="does not match its metadata"):
        load_model(path)


def test_graph_onnxruntime_cannot_run(tmp_path: Path) -> None:
    model = build_tiny_model("window")
    model.graph.node[1].op_type = "NoSuchOperator"
    path = tmp_path / "broken.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFileError, match="onnxruntime cannot load it"):
        load_model(path)


def test_damaged_tokenizer(tmp_path: Path) -> None:
    from termlm.tokenizers import fit_tokenizer

    good = fit_tokenizer("char", "abcdef").to_json()
    broken = {key: value for key, value in good.items() if key != "vocab"}
    model = load_model(write_tiny_model(tmp_path / "a.onnx", "rnn", tokenizer=broken))
    with pytest.raises(ModelFileError, match="tokenizer is damaged"):
        _ = model.tokenizer
    model = load_model(write_tiny_model(tmp_path / "b.onnx", "rnn", tokenizer=good, vocab=99))
    with pytest.raises(ModelFileError, match="tokenizer has 8 tokens but the model 99"):
        _ = model.tokenizer


def test_load_refuses_what_the_reader_refuses(tmp_path: Path) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ModelFileError, match="not an ONNX model file"):
        load_model(path)


# --------------------------------------------------------------------------- registry


def _folder(root: Path, name: str, models: dict[str, str]) -> Path:
    folder = root / name
    folder.mkdir()
    for stem, kind in models.items():
        write_tiny_model(folder / f"{stem}.onnx", kind)
    return folder


def test_find_models_first_name_wins_and_default(tmp_path: Path) -> None:
    user = _folder(tmp_path, "user", {"alpha": "rnn", "shared": "memory"})
    bundled = _folder(
        tmp_path, "bundled", {"shared": "window", "shakespeare-char": "rnn", "b": "rnn"}
    )
    (bundled / "broken.onnx").write_bytes(b"nope")
    entries = find_models([("user", user), ("bundled", bundled), ("cwd", tmp_path / "missing")])
    by_name = {entry.name: entry for entry in entries}
    assert sorted(by_name) == ["alpha", "b", "broken", "shakespeare-char", "shared"]
    assert by_name["shared"].source == "user" and by_name["shared"].arch == "attention"
    assert by_name["broken"].error and "not an ONNX" in by_name["broken"].error
    defaults = [entry.name for entry in entries if entry.is_default]
    assert defaults == ["shakespeare-char"]
    assert by_name["alpha"].val_loss == 2.5 and by_name["alpha"].level == "char"
    assert by_name["alpha"].size == (user / "alpha.onnx").stat().st_size
    assert resolve_model(None, entries) == bundled / "shakespeare-char.onnx"
    assert resolve_model("alpha", entries) == user / "alpha.onnx"
    with pytest.raises(ModelFileError, match="no model named 'zeta'; available: alpha"):
        resolve_model("zeta", entries)
    with pytest.raises(ModelFileError, match="not an ONNX"):
        resolve_model("broken", entries)


def test_card_default_wins(tmp_path: Path) -> None:
    folder = tmp_path / "bundled"
    folder.mkdir()
    write_tiny_model(folder / "shakespeare-char.onnx", "rnn")
    meta = tiny_meta("rnn", card={"default": True})
    write_tiny_model(folder / "zz.onnx", "rnn", meta=meta)
    entries = find_models([("bundled", folder)])
    assert [entry.name for entry in entries if entry.is_default] == ["zz"]


def test_no_models_at_all(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no model found"):
        resolve_model(None, [])


def test_paths_resolve_as_given(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path / "x.onnx"), []) == tmp_path / "x.onnx"


def test_env_folder_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path, "env", {"from-env": "rnn"})
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    entries = find_models()
    assert entries[0].name == "from-env" and entries[0].source == "env"
    assert resolve_model("from-env") == folder / "from-env.onnx"


# --------------------------------------------------------------------------- evaluation


def test_eval_chunks_cover_every_prediction_once() -> None:
    for length in range(0, 40):
        for context in (1, 3, 7, 16):
            data = np.arange(length)
            chunks = list(iter_eval_chunks(data, context))
            targets = np.concatenate([y for _, y in chunks]) if chunks else np.zeros(0)
            np.testing.assert_array_equal(targets, data[1:])
            for x, y in chunks:
                assert 1 <= len(x) == len(y) <= context
                np.testing.assert_array_equal(x + 1, y)


def test_window_examples_are_pre_padded() -> None:
    rows = list(iter_window_examples(np.array([5, 6, 7]), 4, pad_id=0))
    assert [list(w) for w, _ in rows] == [[0, 0, 0, 5], [0, 0, 5, 6]]
    assert [t for _, t in rows] == [6, 7]


def test_token_nll_is_cross_entropy() -> None:
    logits = np.array([[[0.0, math.log(3.0)]]], dtype=np.float32)
    np.testing.assert_allclose(token_nll(logits, np.array([[1]])), [[-math.log(0.75)]], rtol=1e-6)


@pytest.mark.parametrize("kind", ["rnn", "memory", "window"])
def test_evaluate_matches_a_plain_loop(models: dict[str, OnnxLanguageModel], kind: str) -> None:
    model = models[kind]
    data = np.random.default_rng(0).integers(0, VOCAB, size=53)
    total, count = 0.0, 0
    if model.stateful:
        for x, y in iter_eval_chunks(data, CONTEXT):
            logits = model.step(x[None], model.initial_state(1)).logits[0]
            total += float(token_nll(logits, y).sum())
            count += len(y)
    else:
        for window, target in iter_window_examples(data, CONTEXT):
            logits = model.step(window[None], {}).logits[0, -1]
            total += float(token_nll(logits, np.array(target)))
            count += 1
    result = evaluate_ids(model, data, chars=100, batch=3)
    assert result.tokens == count == 52
    assert result.loss == pytest.approx(total / count, rel=1e-6)
    assert result.ppl == pytest.approx(math.exp(result.loss))
    assert result.bpc == pytest.approx(result.loss * 52 / 100 / math.log(2))


# --------------------------------------------------------------------------- real exports


@pytest.mark.parametrize(
    ("arch", "bidirectional"),
    [("lstm", False), ("gru", True), ("attention", False), ("transformer", False)],
)
def test_exported_models_match_pytorch(tmp_path: Path, arch: str, bidirectional: bool) -> None:
    torch = pytest.importorskip("torch")
    from termlm.config import ModelConfig
    from termlm.export import export_model
    from termlm.tokenizers import fit_tokenizer
    from termlm.training.models import build_model

    tokenizer = fit_tokenizer("char", "the quick brown fox jumps over the lazy dog")
    config = ModelConfig(
        arch=arch, vocab_size=tokenizer.vocab_size, context=12, embed=8, hidden=8, layers=1,
        heads=2, bidirectional=bidirectional,
    )  # fmt: skip
    torch.manual_seed(0)
    net = build_model(config).eval()
    path = tmp_path / f"{arch}.onnx"
    export_model(net, tokenizer.to_json(), card={"val_loss": 1.0}, name=arch, out_path=path)
    model = load_model(path)
    assert model.tokenizer.vocab_size == tokenizer.vocab_size
    tokens = ids(tokenizer.encode("the lazy"))
    out = model.step(tokens, model.initial_state(1))
    with torch.no_grad():
        expected, _ = net(torch.from_numpy(tokens if model.stateful else model.window(tokens)))
    np.testing.assert_allclose(out.logits, expected.numpy(), atol=1e-4)
    if model.stateful:  # and step by step, carrying the state
        state = model.initial_state(1)
        for t in range(tokens.shape[1]):
            step = model.step(tokens[:, t : t + 1], state)
            state = step.state
        np.testing.assert_allclose(step.logits[:, 0], out.logits[:, -1], atol=1e-4)
