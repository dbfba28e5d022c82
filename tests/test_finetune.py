"""Fine-tuning: `termlm train --init-from`: weights read back from an exported file, vocabulary
extension, refusals of contradicting flags, lineage, and a fine-tuned model that exports,
evaluates and generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from termlm.cli.app import main  # noqa: E402
from termlm.config import ModelConfig  # noqa: E402
from termlm.errors import ConfigError, TermlmError  # noqa: E402
from termlm.export import checks, export_model  # noqa: E402
from termlm.export.readback import load_onnx_model  # noqa: E402
from termlm.modelfile import read_model_meta  # noqa: E402
from termlm.tokenizers import fit_tokenizer, tokenizer_from_json  # noqa: E402
from termlm.training.init_from import FINETUNE_LR_SHARE, find_source  # noqa: E402
from termlm.training.loop import train  # noqa: E402
from termlm.training.models import LanguageModel, build_model  # noqa: E402
from termlm.training.options import build_options  # noqa: E402
from termlm.training.vocab import extend_state, extend_vocabulary  # noqa: E402

SOURCE_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 6
# new characters (digits, '#', '=', 'é') and new words ("def", "return") for the fine-tuning text
NEW_TEXT = (
    "def speak(n):\n    # speak n times\n    return n * 2 == 4\n\n"
    "All: café, café, speak 12 times.\n\n"
) * 20

ARCHS = [
    {"arch": "rnn"},
    {"arch": "lstm", "layers": 2},
    {"arch": "gru"},
    {"arch": "attention", "attn_size": 8},
    {"arch": "transformer", "heads": 2},
    {"arch": "transformer", "heads": 2, "tie": True, "embed": 16},
    {"arch": "lstm", "tie": True},
    {"arch": "gru", "bidirectional": True},
    {"arch": "lstm", "bidirectional": True},
]


def ids(cfg: dict[str, Any]) -> str:
    return "-".join(str(v) for v in cfg.values())


def tiny_model(vocab: int, **overrides: Any) -> LanguageModel:
    settings_: dict[str, Any] = {
        "vocab_size": vocab,
        "context": 12,
        "embed": 10,
        "hidden": 16,
        "layers": 1,
        "dropout": 0.0,
    }
    settings_.update(overrides)
    torch.manual_seed(3)
    model = build_model(ModelConfig(**settings_))
    with torch.no_grad():  # no zero biases: every weight must find its way back
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def export_tiny(model: LanguageModel, tokenizer_json: dict[str, Any], path: Path) -> Path:
    export_model(
        model, tokenizer_json, card={"corpus": "source.txt"}, name=path.stem, out_path=path
    )
    return path


def char_source(tmp_path: Path, **overrides: Any) -> tuple[LanguageModel, Path]:
    tokenizer = fit_tokenizer("char", SOURCE_TEXT)
    model = tiny_model(tokenizer.vocab_size, **overrides)
    return model, export_tiny(model, tokenizer.to_json(), tmp_path / "source.onnx")


# --------------------------------------------------------------------------- read back


@pytest.mark.parametrize("cfg", ARCHS, ids=ids)
def test_weights_read_back_reproduce_the_source(cfg: dict[str, Any], tmp_path: Path) -> None:
    """The exported file's initializers, put back, give the source model's weights and logits
    (PyTorch against onnxruntime within 1e-4) before any training step."""
    model, path = char_source(tmp_path, **cfg)
    meta = read_model_meta(path)
    rebuilt, max_diff = load_onnx_model(path, meta.config)
    assert max_diff <= 1e-4
    for (name, want), (_, got) in zip(
        model.state_dict().items(), rebuilt.state_dict().items(), strict=True
    ):
        assert torch.equal(want, got), name
    session = checks.make_session(path.read_bytes())
    rng = np.random.default_rng(5)
    feeds, _ = checks.parity_feeds(rebuilt, 3, 9, rng)
    want_logits = checks.ort_outputs(session, feeds)["logits"]
    got_logits = checks.torch_outputs(rebuilt, feeds)["logits"]
    assert np.abs(want_logits - got_logits).max() <= 1e-4


def test_a_graph_that_does_not_fit_its_config_is_refused(tmp_path: Path) -> None:
    _, path = char_source(tmp_path, arch="gru")
    meta = read_model_meta(path)
    wrong = ModelConfig.from_dict({**meta.config.to_dict(), "hidden": 8})
    with pytest.raises(TermlmError, match="shape"):
        load_onnx_model(path, wrong)


def test_a_changed_weight_fails_the_parity_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that put a weight in the wrong place would be caught by the check."""
    import termlm.export.readback as readback

    _, path = char_source(tmp_path, arch="lstm")
    original = readback.weights_from_onnx

    def misplaced(model: LanguageModel, proto: Any) -> None:
        original(model, proto)
        with torch.no_grad():
            model.rnn.weight_hh_l0.mul_(-1.0)

    monkeypatch.setattr(readback, "weights_from_onnx", misplaced)
    with pytest.raises(TermlmError, match="do not reproduce"):
        load_onnx_model(path, read_model_meta(path).config)


# --------------------------------------------------------------------------- vocabulary


def test_char_extension_appends_new_characters_and_keeps_the_known_ids() -> None:
    source = fit_tokenizer("char", SOURCE_TEXT)
    ext = extend_vocabulary(source.to_json(), NEW_TEXT)
    assert ext.known == source.vocab_size
    assert set(ext.added) == set(NEW_TEXT) - set(SOURCE_TEXT)
    assert "é" in ext.added and "1" in ext.added
    assert list(ext.tokenizer.to_json()["vocab"][: source.vocab_size]) == list(source.vocab)
    assert ext.tokenizer.encode(SOURCE_TEXT) == source.encode(SOURCE_TEXT)
    assert ext.tokenizer.unknown_spans(NEW_TEXT) == []


def test_word_extension_adds_repeated_words_only() -> None:
    source = fit_tokenizer("word", SOURCE_TEXT)
    ext = extend_vocabulary(source.to_json(), NEW_TEXT + " onceonly")
    assert "def" in ext.added and "return" in ext.added
    assert "onceonly" not in ext.added  # seen once: stays <unk>
    assert ext.tokenizer.encode(SOURCE_TEXT) == source.encode(SOURCE_TEXT)


def test_bpe_keeps_its_tokenizer() -> None:
    source = fit_tokenizer("bpe", SOURCE_TEXT, vocab_size=300)
    ext = extend_vocabulary(source.to_json(), NEW_TEXT)
    assert ext.added == () and ext.tokenizer.to_json() == source.to_json()


def test_max_vocab_caps_the_extension() -> None:
    source = fit_tokenizer("char", SOURCE_TEXT)
    ext = extend_vocabulary(source.to_json(), NEW_TEXT, max_vocab=source.vocab_size + 2)
    assert len(ext.added) == 2 and ext.tokenizer.vocab_size == source.vocab_size + 2


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_extension_knows_every_character_and_keeps_old_ids(text: str) -> None:
    source = fit_tokenizer("char", SOURCE_TEXT)
    ext = extend_vocabulary(source.to_json(), text)
    assert ext.tokenizer.unknown_spans(text) == []
    assert ext.tokenizer.decode(ext.tokenizer.encode(text)) == text
    assert ext.tokenizer.encode(SOURCE_TEXT) == source.encode(SOURCE_TEXT)
    again = tokenizer_from_json(ext.tokenizer.to_json())
    assert again.encode(text) == ext.tokenizer.encode(text)


@pytest.mark.parametrize("cfg", [{"arch": "lstm"}, {"arch": "transformer", "tie": True}], ids=ids)
def test_extension_keeps_known_rows_exactly(cfg: dict[str, Any]) -> None:
    model = tiny_model(20, heads=2, embed=16, **cfg)
    bigger = build_model(ModelConfig.from_dict({**model.config.to_dict(), "vocab_size": 25}))
    grown = extend_state(model.state_dict(), bigger.state_dict(), known=20)
    bigger.load_state_dict(grown)
    old = model.state_dict()
    for name, tensor in bigger.state_dict().items():
        if tensor.shape == old[name].shape:
            assert torch.equal(tensor, old[name]), name
            continue
        assert torch.equal(tensor[:20], old[name]), name  # known rows: bit for bit
        mean = old[name][2:].mean(dim=0)
        for row in tensor[20:]:
            assert torch.allclose(row, mean), name
    # the known tokens' logits barely move: the new rows are average tokens
    tokens = torch.randint(2, 20, (2, 7))
    with torch.no_grad():
        before = torch.log_softmax(model(tokens)[0], -1)
        after = torch.log_softmax(bigger.eval()(tokens)[0], -1)[..., :20]
    assert float((before.exp() * (before - after)).sum(-1).max()) < 0.5


def test_new_input_rows_are_drawn_like_the_known_ones() -> None:
    """Sampled input rows: distinct, as long as known rows, around their mean; the output rows
    still start at the mean, and the known rows are kept bit for bit."""
    model = tiny_model(40, arch="lstm", embed=16)
    bigger = build_model(ModelConfig.from_dict({**model.config.to_dict(), "vocab_size": 240}))
    old = model.state_dict()
    grown = extend_state(old, bigger.state_dict(), known=40, sampled=("embedding.weight",))
    again = extend_state(old, bigger.state_dict(), known=40, sampled=("embedding.weight",))
    rows, known = grown["embedding.weight"], old["embedding.weight"]
    assert torch.equal(rows[:40], known) and torch.equal(rows, again["embedding.weight"])
    new = rows[40:]
    assert len({tuple(row.tolist()) for row in new}) == 200  # every new token its own row
    norms, known_norms = new.norm(dim=1).mean(), known[2:].norm(dim=1).mean()
    assert 0.7 < float(norms / known_norms) < 1.3
    assert torch.allclose(new.mean(0), known[2:].mean(0), atol=0.6 * float(known[2:].std()))
    decoder = grown["head.decoder.weight"]
    assert torch.allclose(decoder[40:], old["head.decoder.weight"][2:].mean(0).expand(200, -1))


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ({"hidden": 99}, ["--hidden 99", "hidden 16"]),
        ({"arch": "gru"}, ["--arch gru", "lstm"]),
        ({"level": "word"}, ["--level word", "char level"]),
        ({"layers": 3}, ["--layers 3", "layers 1"]),
        ({"embed": 7}, ["--embed 7"]),
        ({"tie": True}, ["--tie"]),
        ({"bidirectional": True}, ["--bidirectional"]),
        ({"recipe": "tutorial"}, ["tutorial"]),
        ({"vocab_size": 500}, ["--vocab-size 500"]),
        ({"lowercase": True}, ["--lowercase", "keeps case"]),
        ({"punctuation": "keep"}, ["--punctuation keep"]),
    ],
)
def test_contradicting_flags_are_refused(
    tmp_path: Path, flags: dict[str, Any], words: list[str]
) -> None:
    _, path = char_source(tmp_path, arch="lstm")
    corpus = tmp_path / "new.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    args: dict[str, Any] = {"level": None, "arch": None, **flags}
    with pytest.raises(ConfigError) as caught:
        build_options(corpus=str(corpus), init_from=str(path), out=str(tmp_path), **args)
    assert all(word in caught.value.message for word in words), caught.value.message
    assert caught.value.hint


def test_flags_that_agree_with_the_source_or_only_train_are_accepted(tmp_path: Path) -> None:
    _, path = char_source(tmp_path, arch="lstm")
    options = build_options(
        corpus="x.txt", level="char", arch="lstm", hidden=16, context=40, dropout=0.3,
        lr=0.02, init_from=str(path),
    )  # fmt: skip
    assert options.model.hidden == 16 and options.model.embed == 10
    assert options.model.context == 40 and options.model.dropout == 0.3 and options.lr == 0.02


def test_fine_tuning_defaults(tmp_path: Path) -> None:
    _, path = char_source(tmp_path, arch="gru")
    scratch = build_options(corpus="x.txt", level="char", arch=None)
    tuned = build_options(corpus="x.txt", level=None, arch=None, init_from=str(path))
    assert tuned.warmup < scratch.warmup
    # a multiple of the architecture's own rate
    assert tuned.lr == pytest.approx(FINETUNE_LR_SHARE * scratch.lr)
    _, transformer = char_source(tmp_path / "t", arch="transformer", heads=2)
    own = build_options(corpus="x.txt", level="char", arch="transformer")
    started = build_options(corpus="x.txt", level=None, arch=None, init_from=str(transformer))
    assert started.lr == pytest.approx(FINETUNE_LR_SHARE * own.lr) and own.lr < scratch.lr
    # both stop early by default; a fine-tune sooner (a small text overfits a big model fast)
    assert tuned.patience is not None and scratch.patience is not None
    assert 0 < tuned.patience < scratch.patience
    assert tuned.model.arch == "gru" and tuned.model.hidden == 16
    overridden = build_options(
        corpus="x.txt", level=None, arch=None, init_from=str(path), patience=9, warmup=0.2
    )
    assert overridden.patience == 9 and overridden.warmup == 0.2


def test_context_of_a_transformer_or_window_model_is_refused(tmp_path: Path) -> None:
    _, path = char_source(tmp_path, arch="transformer", heads=2)
    with pytest.raises(ConfigError, match="position"):
        build_options(corpus="x.txt", level=None, arch=None, context=50, init_from=str(path))
    _, window = char_source(tmp_path / "w", arch="gru", bidirectional=True)
    with pytest.raises(ConfigError, match="window"):
        build_options(corpus="x.txt", level=None, arch=None, context=50, init_from=str(window))


def test_a_quantized_file_and_unknown_sources_are_refused(tmp_path: Path) -> None:
    tokenizer = fit_tokenizer("char", SOURCE_TEXT)
    model = tiny_model(tokenizer.vocab_size, arch="lstm")
    path = tmp_path / "q.onnx"
    export_model(model, tokenizer.to_json(), card={}, name="q", out_path=path, quantize="int8")
    with pytest.raises(ConfigError, match="int8"):
        find_source(str(path))
    with pytest.raises(TermlmError, match="no model named"):
        find_source("no-such-model-anywhere")
    with pytest.raises(TermlmError, match=r"config\.json"):
        find_source(str(tmp_path))  # a folder, but not a run
    with pytest.raises(ConfigError, match="--init-from"):
        build_options(corpus="x.txt", level=None, arch=None, freeze_embeddings=True)


def test_the_cli_refuses_with_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = char_source(tmp_path, arch="lstm")
    corpus = tmp_path / "new.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    with pytest.raises(SystemExit) as stopped:
        main(["train", str(corpus), "--init-from", str(path), "--hidden", "64", "-q"])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert "--hidden 64 contradicts" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- training


def finetune(
    source: Path | str, corpus: Path, out: Path, name: str, **flags: Any
) -> dict[str, Any]:
    options = build_options(
        corpus=str(corpus), level=None, arch=None, init_from=str(source), out=str(out),
        name=name, max_steps=flags.pop("max_steps", 6), batch_size=4, **flags,
    )  # fmt: skip
    return train(options, show_progress=False)


@pytest.mark.parametrize(
    ("level", "cfg"),
    [
        ("char", {"arch": "rnn"}),
        ("char", {"arch": "attention"}),
        ("word", {"arch": "gru"}),
        ("word", {"arch": "transformer", "heads": 2, "tie": True, "embed": 16}),
        ("bpe", {"arch": "lstm"}),
        ("char", {"arch": "lstm", "bidirectional": True}),
    ],
    ids=lambda v: v if isinstance(v, str) else ids(v),
)
def test_every_level_fine_tunes_from_a_file(
    tmp_path: Path, level: str, cfg: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    tokenizer = fit_tokenizer(level, SOURCE_TEXT, **({"vocab_size": 300} if level == "bpe" else {}))
    model = tiny_model(tokenizer.vocab_size, **cfg)
    source = export_tiny(model, tokenizer.to_json(), tmp_path / "source.onnx")
    corpus = tmp_path / "new.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    result = finetune(source, corpus, tmp_path / "runs", "tuned")
    assert np.isfinite(result["val_loss"])
    lineage = result["init_from"]
    assert lineage["name"] == "source" and lineage["vocab_size"] == tokenizer.vocab_size
    assert len(lineage["sha256"]) == 64
    added = len(lineage["added_tokens"])
    assert (added == 0) if level == "bpe" else (added > 0)
    assert f"{added} new" in capsys.readouterr().err or added == 0
    run = Path(result["run_dir"])
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["vocab_size"] == tokenizer.vocab_size + added
    assert config["init_from"]["sha256"] == lineage["sha256"]
    for key in ("arch", "hidden", "embed", "layers", "bidirectional", "tie"):
        assert config["model"][key] == model.config.to_dict()[key]


def test_a_short_text_does_not_resize_the_source(tmp_path: Path) -> None:
    """From scratch, a short text gets hidden 128; a fine-tune keeps the source's sizes."""
    _, path = char_source(tmp_path, arch="lstm", hidden=160)
    corpus = tmp_path / "new.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    result = finetune(path, corpus, tmp_path / "runs", "tuned", max_steps=1)
    config = json.loads((Path(result["run_dir"]) / "config.json").read_text())
    assert config["model"]["hidden"] == 160 and config["model"]["embed"] == 10


def test_training_starts_from_the_source_weights(tmp_path: Path) -> None:
    """The first validation of a fine-tuned run is near the source's loss, far below a fresh
    model's; with --freeze-embeddings the known embedding rows do not move."""
    from safetensors.torch import load_file

    tokenizer = fit_tokenizer("char", SOURCE_TEXT)
    corpus = tmp_path / "source.txt"
    corpus.write_text(SOURCE_TEXT * 4, encoding="utf-8")
    first = train(
        build_options(
            corpus=str(corpus), level="char", arch="lstm", embed=10, hidden=32, layers=1,
            context=24, batch_size=8, max_steps=60, lr=2e-2, out=str(tmp_path), name="src",
        ),
        show_progress=False,
    )  # fmt: skip
    assert first["val_loss"] < 1.5
    source_run = Path(first["run_dir"])
    tuned = finetune(source_run, corpus, tmp_path, "tuned", max_steps=1, lr=1e-6)
    assert tuned["init_from"]["from"] == "run folder"
    assert tuned["init_from"]["added_tokens"] == []
    assert tuned["val_loss"] == pytest.approx(first["val_loss"], abs=0.01)  # fresh: ~ln(29)
    again = tmp_path / "digits.txt"
    again.write_text("12 Speak, speak.\n" * 80, encoding="utf-8")  # new: "1" and "2"
    frozen = finetune(source_run, again, tmp_path, "frozen", max_steps=4, freeze_embeddings=True)
    start = load_file(str(source_run / "best.safetensors"))["embedding.weight"]
    after = load_file(str(Path(frozen["run_dir"]) / "last.safetensors"))["embedding.weight"]
    known = tokenizer.vocab_size
    assert torch.equal(after[:known], start[:known])
    assert after.shape[0] == known + 2  # '1' and '2' are new
    assert not torch.equal(after[known:], start[2:].mean(0).expand(2, -1))  # new rows learn


def test_an_interrupted_fine_tuning_resumes(tmp_path: Path) -> None:
    _, path = char_source(tmp_path, arch="gru")
    corpus = tmp_path / "new.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    from termlm.training.loop import TrainingInterrupted

    options = build_options(
        corpus=str(corpus), level=None, arch=None, init_from=str(path), out=str(tmp_path),
        name="run", max_steps=8, batch_size=4, freeze_embeddings=True,
    )  # fmt: skip
    options.stop_after_steps = 3
    with pytest.raises(TrainingInterrupted):
        train(options, show_progress=False)
    again = build_options(corpus=str(corpus), level=None, arch=None)
    result = train(again, show_progress=False, resume=str(tmp_path / "run"))
    assert result["steps"] == 8 and result["init_from"]["name"] == "source"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_fine_tuned_model_exports_evaluates_and_generates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, source = char_source(tmp_path, arch="lstm")
    models = tmp_path / "models"
    models.mkdir()
    source = source.rename(models / "source.onnx")
    monkeypatch.setenv("TERMLM_MODELS_DIR", str(models))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "new.txt"
    corpus.write_text(NEW_TEXT, encoding="utf-8")
    code, out, err = run_cli(
        capsys, "train", str(corpus), "--init-from", "source", "--max-steps", "6",
        "--batch-size", "4", "--out", "runs", "--name", "tuned", "-q", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "fine-tuning source" in err and "new characters" in err
    code, out, err = run_cli(capsys, "export", "runs/tuned", "-o", str(models / "tuned.onnx"))
    assert code == 0, err
    meta = read_model_meta(models / "tuned.onnx")
    import hashlib

    parent = meta.card["init_from"]
    assert parent["name"] == "source"
    assert parent["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    code, out, err = run_cli(capsys, "eval", str(models / "tuned.onnx"), str(corpus), "--json")
    assert code == 0, err
    assert np.isfinite(json.loads(out)["loss"])
    code, out, err = run_cli(
        capsys, "generate", "tuned", "--prompt", "def ", "--max-tokens", "12", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["text"]
    code, out, err = run_cli(capsys, "models", "--json")
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert listed["tuned"]["init_from"] == {"name": "source", "sha256": parent["sha256"]}
    assert listed["source"]["init_from"] is None
    from termlm.conversation.engine import OnnxEngine

    labels = {info.name: info.label() for info in OnnxEngine().models()}  # the chat's model list
    assert labels["tuned"].endswith("· from source") and "from" not in labels["source"]
    engine = OnnxEngine(entry_points=False, user_dir=False)  # the chat's engine replies with it
    assert engine.load("tuned").name == "tuned"
    events = list(engine.generate("def ", strategy="sample", options={}, max_new_tokens=6, seed=1))
    assert events[-1].result.stop_reason == "length" and len(events[-1].result.token_ids) == 6
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run_cli(capsys, "models")
    assert code == 0 and "from" in out and f"source ({parent['sha256'][:8]})" in out
    # and a second generation: fine-tuning the fine-tuned model keeps the chain
    code, out, err = run_cli(
        capsys, "train", str(corpus), "--init-from", str(models / "tuned.onnx"),
        "--max-steps", "2", "--batch-size", "4", "--out", "runs", "--name", "again", "-q",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    lineage = json.loads(out.strip().splitlines()[-1])["init_from"]
    assert lineage["name"] == "tuned" and lineage["init_from"]["name"] == "source"
    assert lineage["added_tokens"] == []
