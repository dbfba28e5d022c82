"""Export every architecture to ONNX; the file runs in onnxruntime like the PyTorch model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_model

from termlm.config import ModelConfig
from termlm.errors import ConfigError, ModelFileError, RunError
from termlm.export import checks, export_model, load_run
from termlm.modelfile import read_model_meta
from termlm.training.models import LanguageModel, build_model

VOCAB = 20

ARCHS = [
    {"arch": "rnn"},
    {"arch": "lstm"},
    {"arch": "gru"},
    {"arch": "lstm", "bidirectional": True},
    {"arch": "gru", "bidirectional": True},
    {"arch": "attention", "attn_size": 8},
    {"arch": "transformer", "tie": True},
    # the adaptive softmax exports full next-word log-probabilities, tied and untied
    {"arch": "lstm", "softmax": "adaptive", "cutoffs": [5, 12], "tie": True, "embed": 16},
    {"arch": "gru", "softmax": "adaptive", "cutoffs": [6], "weight_drop": 0.3},
]


def ids(cfg: dict[str, Any]) -> str:
    return "-".join(str(v) for v in cfg.values())


def tokenizer_json() -> dict[str, Any]:
    """A word tokenizer's JSON with VOCAB entries (<pad>, <unk>, then words)."""
    words = [f"w{i}" for i in range(VOCAB - 2)]
    return {
        "type": "word",
        "version": 1,
        "lowercase": True,
        "punctuation": "strip",
        "eos_id": None,
        "vocab": ["<pad>", "<unk>", *words],
    }


def tiny(**overrides: Any) -> LanguageModel:
    settings: dict[str, Any] = {
        "vocab_size": VOCAB,
        "context": 16,
        "embed": 12,
        "hidden": 16,
        "layers": 2,
        "heads": 2,
        "dropout": 0.1,
    }
    settings.update(overrides)
    torch.manual_seed(0)
    return build_model(ModelConfig(**settings))


def make_run(folder: Path, model: LanguageModel, *, weights: bool = True) -> Path:
    """A run folder as `termlm train` writes it."""
    folder.mkdir(parents=True)
    config = {
        "model": model.config.to_dict(),
        "train": {"level": "word", "lr": 0.003},
        "corpus": {"name": "tiny.txt", "sha256": "ab" * 32, "chars": 1234},
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json()))
    if weights:
        save_model(model, str(folder / "best.safetensors"))
        save_model(model, str(folder / "last.safetensors"))
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 3.0}\n')
    result = {
        "val_loss": 2.5,
        "val_ppl": 12.18,
        "val_bpc": None,
        "params": model.num_parameters(),
        "seconds": 4.2,
        "command": "termlm train tiny.txt --level word",
    }
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def export(model: LanguageModel, path: Path, **kwargs: Any) -> Any:
    return export_model(model, tokenizer_json(), card={"corpus": "tiny.txt"}, name="tiny",
                        out_path=path, **kwargs)  # fmt: skip


@pytest.mark.parametrize("cfg", ARCHS, ids=ids)
def test_every_architecture_exports_and_passes_the_checks(
    cfg: dict[str, Any], tmp_path: Path
) -> None:
    model = tiny(**cfg).train()
    path = tmp_path / "out" / "tiny.onnx"
    report = export(model, path)
    assert model.training  # the export leaves the model's mode alone
    assert path.is_file() and report.bytes == path.stat().st_size
    assert path.stat().st_mode & 0o044  # readable by others: a file meant to be shared
    assert [c.name for c in report.checks] == ["symbolic axes", "parity", "steps"]
    assert all(c.max_diff <= 1e-4 for c in report.checks)
    assert report.ops  # e.g. LSTM, GRU, RNN, MatMul
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary left behind


def _session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("cfg", ARCHS, ids=ids)
def test_onnxruntime_matches_pytorch(cfg: dict[str, Any], tmp_path: Path) -> None:
    """Independent of export's own checks: feed the written file, compare with PyTorch."""
    model = tiny(**cfg)
    path = tmp_path / "m.onnx"
    export(model, path)
    session = _session(path)
    model.eval()
    rng = np.random.default_rng(7)
    batch, time, past = 3, 9 if model.stateful else 16, 4
    tokens = rng.integers(0, VOCAB, (batch, time))
    feeds: dict[str, np.ndarray] = {"tokens": tokens}
    state = []
    for spec in model.state_spec():
        shape = [batch if d == "batch" else past if d == "time" else int(d) for d in spec.shape]
        value = rng.standard_normal(shape).astype(np.float32)
        feeds[f"state_{spec.name}"] = value
        state.append(torch.from_numpy(value))
    with torch.no_grad():
        logits, new_state, extras = model.forward_with_extras(
            torch.from_numpy(tokens), tuple(state) or None
        )
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, feeds), strict=True))
    np.testing.assert_allclose(got["logits"], logits.numpy(), atol=1e-4, rtol=1e-4)
    assert got["logits"].shape == ((batch, time, VOCAB) if model.stateful else (batch, 1, VOCAB))
    for spec, tensor in zip(model.state_spec(), new_state, strict=True):
        np.testing.assert_allclose(got[f"new_{spec.name}"], tensor.numpy(), atol=1e-4, rtol=1e-4)
    for name in model.extras_names():
        np.testing.assert_allclose(got[name], extras[name].numpy(), atol=1e-4, rtol=1e-4)
    if "attention" in extras:
        assert got["attention"].shape == (batch, time, past + time)


def test_an_empty_memory_runs_in_onnxruntime(tmp_path: Path) -> None:
    for cfg in ({"arch": "attention"}, {"arch": "transformer"}):
        model = tiny(**cfg).eval()
        path = tmp_path / f"{cfg['arch']}.onnx"
        export(model, path)
        feeds = {"tokens": np.array([[3]], dtype=np.int64)}
        feeds.update(checks.initial_feeds(model, 1))
        logits = _session(path).run(["logits"], feeds)[0]
        with torch.no_grad():
            want, _ = model(torch.tensor([[3]]))
        np.testing.assert_allclose(logits, want.numpy(), atol=1e-5)


def test_the_metadata_parses_and_matches(tmp_path: Path) -> None:
    model = tiny(arch="attention", attn_size=8)
    path = tmp_path / "m.onnx"
    export(model, path)
    meta = read_model_meta(path)
    assert meta.format == 1
    assert meta.name == "tiny"
    assert meta.config == model.config
    assert meta.level == "word"
    assert meta.tokenizer == tokenizer_json()
    assert meta.stateful is True and meta.context == 16
    assert [s.name for s in meta.state] == ["h", "c", "keys", "values"]
    assert meta.state[2].shape == ("batch", "time", 8)
    assert meta.state[2].time_axis == 1 and meta.state[0].time_axis is None
    assert meta.extras == ("attention", "hidden")
    assert (meta.special.pad, meta.special.unk, meta.special.eos) == (0, 1, None)
    assert meta.quantized is None
    assert meta.card["corpus"] == "tiny.txt" and meta.card["created"]
    # the graph's inputs and outputs are the ones the metadata names
    session = _session(path)
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    assert inputs == ["tokens"] + [f"state_{s.name}" for s in meta.state]
    assert outputs == ["logits"] + [f"new_{s.name}" for s in meta.state] + list(meta.extras)


def test_a_tokenizer_of_another_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tokenizer has 20 tokens but the model 30"):
        export(tiny(arch="gru", vocab_size=30), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_window_model_metadata(tmp_path: Path) -> None:
    path = tmp_path / "w.onnx"
    export(tiny(arch="gru", bidirectional=True), path)
    meta = read_model_meta(path)
    assert meta.stateful is False and meta.state == () and meta.extras == ()


def test_a_failing_check_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = checks.torch_outputs

    def skewed(model: LanguageModel, feeds: checks.Feeds) -> dict[str, np.ndarray]:
        out = real(model, feeds)
        out["logits"] = out["logits"] + 1e-3
        return out

    monkeypatch.setattr(checks, "torch_outputs", skewed)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ModelFileError, match=r"parity.*logits differs by 0\.001"):
        export(tiny(arch="lstm"), path)
    assert path.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [path]


def test_int8_quantization(tmp_path: Path) -> None:
    path = tmp_path / "q.onnx"
    report = export(tiny(arch="lstm", embed=32, hidden=64, layers=1), path, quantize="int8")
    assert report.quantized == "int8"
    assert report.bytes < report.float_bytes
    assert report.quantized_max_diff is not None and 0 <= report.quantized_max_diff < 0.5
    assert "DynamicQuantizeLSTM" in report.ops
    assert read_model_meta(path).quantized == "int8"
    feeds = {"tokens": np.array([[1, 2, 3]], dtype=np.int64)}
    feeds.update(checks.initial_feeds(tiny(arch="lstm", embed=32, hidden=64, layers=1), 1))
    logits = _session(path).run(["logits"], feeds)[0]
    assert logits.shape == (1, 3, VOCAB) and np.isfinite(logits).all()


def test_load_run_round_trip(tmp_path: Path) -> None:
    model = tiny(arch="transformer", tie=True)
    run = make_run(tmp_path / "myrun", model)
    loaded, tokenizer, info = load_run(run)
    assert not loaded.training
    assert tokenizer == tokenizer_json()
    assert info.name == "myrun" and info.level == "word"
    assert info.weights.name == "best.safetensors"
    card = info.card()
    assert card["corpus_sha256"] == "ab" * 32 and card["val_loss"] == 2.5
    assert card["train_seconds"] == 4.2
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_load_run_refusals(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="does not exist"):
        load_run(tmp_path / "nowhere")
    run = make_run(tmp_path / "noweights", tiny(arch="gru"), weights=False)
    with pytest.raises(RunError, match="no weights"):
        load_run(run)
    (run / "tokenizer.json").unlink()
    with pytest.raises(RunError, match=r"no tokenizer\.json"):
        load_run(run)
    other = make_run(tmp_path / "mismatch", tiny(arch="gru"))
    save_model(tiny(arch="lstm"), str(other / "best.safetensors"))
    with pytest.raises(RunError, match="do not fit"):
        load_run(other)


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from termlm.cli.app import main

    run = make_run(tmp_path / "clirun", tiny(arch="gru"))
    out = tmp_path / "exported" / "x.onnx"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(run), "-o", str(out), "--json"])
    assert exit_info.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(out) and out.is_file()
    meta = read_model_meta(out)
    assert meta.name == "x" and meta.card["val_loss"] == 2.5 and meta.card["run"] == "clirun"

    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "missing")])
    assert exit_info.value.code == 1
    assert "does not exist" in capsys.readouterr().err
