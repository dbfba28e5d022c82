"""Fine-tuning: `termlm train TEXT --init-from SOURCE` starts from a trained model.

SOURCE is a model name (`termlm models`), an exported .onnx file, or a run folder. Its
architecture, sizes and tokenizer are kept (flags that contradict them are refused, with the
reason); the tokenizer grows by the new text's unknown characters or words
(``termlm.training.vocab``); the weights come from the file's initializers
(``termlm.export.readback``, checked against onnxruntime) or the run's safetensors. The run
records where it started (name and sha256) in its config.json, and from there in the card
of the file it exports.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from termlm.config import ModelConfig
from termlm.errors import ConfigError, RunError
from termlm.training.defaults import arch_defaults
from termlm.training.models import LanguageModel, build_model
from termlm.training.options import LEVEL_BATCH, LEVEL_LR, TrainOptions
from termlm.training.vocab import Extension, describe_added, extend_state

# Fine-tuning defaults: 1.6 times the rate the source's architecture trains at from scratch
# (8e-3 for a char LSTM: it beat 1e-3, 2e-3 and 4e-3 in benchmarks/finetune.py, where the large
# source gets few steps in a short budget and a bolder rate adapts it in them), a short warm-up,
# and a stop once validation has not improved three times (small texts overfit).
FINETUNE_LR_SHARE = 1.6
FINETUNE_WARMUP = 0.01
FINETUNE_PATIENCE = 3


@dataclass
class Source:
    """A trained model to start from."""

    kind: str  # "model file" | "run folder"
    path: Path
    name: str
    config: ModelConfig
    level: str
    tokenizer_json: dict[str, Any]
    card: dict[str, Any] = field(default_factory=dict)

    def sha256(self) -> str:
        """Of the model file, or of the run's weights file."""
        target = self.path if self.kind == "model file" else _run_weights(self.path)
        digest = hashlib.sha256()
        with target.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def load_model(self) -> tuple[LanguageModel, str]:
        """The source's PyTorch model (eval mode), and how its weights were checked."""
        if self.kind == "run folder":
            from termlm.export.run_loader import load_run

            model, _, info = load_run(self.path)
            return model, f"weights from {info.weights.name}"
        from termlm.export.readback import load_onnx_model

        model, diff = load_onnx_model(self.path, ModelConfig.from_dict(self.config.to_dict()))
        return (
            model,
            f"weights read back from the file (outputs match onnxruntime within {diff:.1g})",
        )


def _run_weights(run_dir: Path) -> Path:
    from termlm.export.run_loader import WEIGHTS

    for name in WEIGHTS:
        if (run_dir / name).is_file():
            return run_dir / name
    raise RunError(
        f"the run folder {str(run_dir)!r} has no weights ({' or '.join(WEIGHTS)})",
        "let that run reach its first validation, or start from an exported model",
    )


def find_source(spec: str) -> Source:
    """The model ``spec`` names: a run folder, an .onnx path, or a name from `termlm models`."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _run_source(path)
    from termlm.modelfile import read_model_meta
    from termlm.runtime.registry import resolve_model

    file = resolve_model(spec)
    meta = read_model_meta(file)
    if meta.quantized:
        raise ConfigError(
            f"{file} holds {meta.quantized} weights; fine-tuning needs the float32 ones",
            "start from the file exported without --quantize, or from its run folder",
        )
    return Source(
        kind="model file",
        path=file,
        name=meta.name,
        config=meta.config,
        level=meta.level,
        tokenizer_json=dict(meta.tokenizer),
        card=dict(meta.card),
    )


def _run_source(run_dir: Path) -> Source:
    from termlm.training.checkpoint import read_json

    config_json = read_json(run_dir / "config.json")
    tokenizer = read_json(run_dir / "tokenizer.json")
    train = config_json.get("train") if isinstance(config_json, dict) else None
    model = config_json.get("model") if isinstance(config_json, dict) else None
    level = train.get("level") if isinstance(train, dict) else None
    if not isinstance(model, dict) or not isinstance(tokenizer, dict) or not isinstance(level, str):
        raise RunError(
            f"{run_dir / 'config.json'} does not describe a termlm run",
            "give a folder written by `termlm train`",
        )
    _run_weights(run_dir)  # refuse early when it has none
    card: dict[str, Any] = {}
    if isinstance(config_json.get("init_from"), dict):
        card["init_from"] = config_json["init_from"]
    return Source(
        kind="run folder",
        path=run_dir,
        name=run_dir.resolve().name,
        config=ModelConfig.from_dict(model),
        level=level,
        tokenizer_json=tokenizer,
        card=card,
    )


# --------------------------------------------------------------------------- options


def _contradiction(flag: str, value: Any, source: Source, has: str, why: str) -> ConfigError:
    return ConfigError(
        f"{flag} {value} contradicts --init-from {source.name}, which {has}: {why}",
        f"drop {flag} (a fine-tuned model keeps its source's architecture), or train from "
        "scratch without --init-from",
    )


def check_flags(source: Source, given: dict[str, Any]) -> None:
    """Refuse every given flag that would change what the source is."""
    config, tok = source.config, source.tokenizer_json
    arch_of = config.arch + (" (bidirectional window model)" if config.bidirectional else "")
    if given.get("recipe") == "tutorial":
        raise ConfigError(
            "--recipe tutorial trains its own small model; it cannot start from another",
            "drop --recipe tutorial to fine-tune, or drop --init-from",
        )
    if given.get("level") is not None and given["level"] != source.level:
        raise _contradiction(
            "--level", given["level"], source, f"is {source.level} level", "the tokenizer is kept"
        )
    if given.get("arch") is not None and given["arch"] != config.arch:
        raise _contradiction("--arch", given["arch"], source, f"is a {arch_of}", "weights fit one")
    if given.get("bidirectional") and not config.bidirectional:
        raise _contradiction(
            "--bidirectional", "", source, f"is a {arch_of}", "the weights read one way"
        )
    for name in ("embed", "hidden", "layers"):
        value = given.get(name)
        if value is not None and value != getattr(config, name):
            raise _contradiction(
                f"--{name}",
                value,
                source,
                f"has {name} {getattr(config, name)}",
                "the weight matrices have that size",
            )
    heads = given.get("heads")
    if config.arch == "transformer" and heads is not None and heads != config.heads:
        raise _contradiction(
            "--heads", heads, source, f"has {config.heads} heads", "the attention is split so"
        )
    if given.get("tie") and not config.tie:
        raise _contradiction(
            "--tie", "", source, "has separate input and output embeddings", "both are kept"
        )
    context = given.get("context")
    if context is not None and context != config.context:
        if config.arch == "transformer":
            raise _contradiction(
                "--context",
                context,
                source,
                f"has {config.context} positions",
                "its position table has that many rows",
            )
        if config.bidirectional:
            raise _contradiction(
                "--context",
                context,
                source,
                f"reads windows of {config.context} tokens",
                "the window is part of the model",
            )
    lowercase = given.get("lowercase")
    if lowercase is not None and lowercase != bool(tok.get("lowercase")):
        keeps = "lowercases its text" if tok.get("lowercase") else "keeps case"
        raise _contradiction(
            "--lowercase" if lowercase else "--keep-case",
            "",
            source,
            keeps,
            "the tokenizer is kept",
        )
    punctuation = given.get("punctuation")
    if punctuation is not None and punctuation != tok.get("punctuation"):
        mode = tok.get("punctuation")
        has = f"{mode}s punctuation" if mode else f"is {source.level} level"
        raise _contradiction("--punctuation", punctuation, source, has, "the tokenizer is kept")
    vocab_size = given.get("vocab_size")
    if vocab_size is not None and vocab_size != config.vocab_size:
        raise _contradiction(
            "--vocab-size",
            vocab_size,
            source,
            f"has {config.vocab_size} tokens",
            "the tokenizer is kept (new characters or words are added to it; --max-vocab caps that)",
        )
    max_vocab = given.get("max_vocab")
    if source.level == "bpe" and max_vocab is not None and max_vocab != config.vocab_size:
        raise _contradiction(
            "--max-vocab",
            max_vocab,
            source,
            "has a byte-level BPE tokenizer",
            "it already encodes every text, so nothing is added",
        )


def finetune_lr(source: Source) -> float:
    """The default fine-tuning rate: a share of the source architecture's own default rate."""
    scratch = arch_defaults(source.level, source.config.arch).get("lr", LEVEL_LR[source.level])
    return FINETUNE_LR_SHARE * float(scratch)


def finetune_options(
    *,
    corpus: str | None,
    init_from: str,
    batch_size: int | None = None,
    lr: float | None = None,
    epochs: float | None = None,
    dropout: float | None = None,
    context: int | None = None,
    **given: Any,
) -> TrainOptions:
    """TrainOptions for fine-tuning ``init_from``: the source's model and tokenizer settings,
    fine-tuning defaults (lower lr, short warm-up, early stopping), every flag overridable
    unless it contradicts the source."""
    source = find_source(init_from)
    check_flags(source, {**given, "context": context})
    for name in ("level", "arch", "recipe", "bidirectional", "embed", "hidden", "layers", "heads"):
        given.pop(name, None)
    given.pop("tie", None)
    model = ModelConfig.from_dict(source.config.to_dict())
    if dropout is not None:
        model.dropout = dropout
    if context is not None:
        model.context = context
    tok = source.tokenizer_json
    given["lowercase"] = bool(tok.get("lowercase"))
    given["punctuation"] = tok.get("punctuation") if source.level == "word" else None
    given["vocab_size"] = None
    if given.get("patience") is None:
        given["patience"] = FINETUNE_PATIENCE
    given.setdefault("warmup", FINETUNE_WARMUP)
    # the source's sizes are fixed: nothing is sized to the new text but the batch
    fixed = ["arch", "embed", "hidden", "layers", "heads", "tie", "context"]
    trained = [
        name for name, value in (("batch_size", batch_size), ("lr", lr)) if value is not None
    ]
    options = TrainOptions(
        corpus=corpus,
        level=source.level,
        recipe="stream",
        model=model,
        batch_size=batch_size if batch_size is not None else LEVEL_BATCH[source.level],
        lr=lr if lr is not None else finetune_lr(source),
        epochs=epochs,
        init_from=init_from,
        given=[*fixed, *(["dropout"] if dropout is not None else []), *trained],
        **given,
    )
    options.validate()
    return options


# --------------------------------------------------------------------------- the run


@dataclass
class FineTuneStart:
    """What the training loop needs to start from the source."""

    lineage: dict[str, Any]
    known: int  # the source's vocabulary size
    freeze_embeddings: bool
    state: dict[str, torch.Tensor] | None  # None when a run resumes (its checkpoint has them)

    def apply(self, model: LanguageModel) -> None:
        """Load the starting weights into the fresh ``model``; freeze the known embedding rows."""
        if self.state is not None:
            model.load_state_dict(self.state)
        if self.freeze_embeddings:
            freeze_rows(model, self.known)


def freeze_rows(model: LanguageModel, known: int) -> None:
    """Gradients of the input embedding's first ``known`` rows are zeroed: with no weight
    decay on embeddings, AdamW leaves those rows exactly as they are; new rows still learn."""
    embedding = model.get_submodule("embedding")  # every architecture's token embedding
    if not isinstance(embedding, torch.nn.Embedding):
        raise ConfigError(f"--freeze-embeddings: a {model.config.arch} has no token embedding")
    weight = embedding.weight

    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:known] = 0
        return grad

    weight.register_hook(hook)


def begin(
    source: Source,
    extension: Extension,
    config: ModelConfig,
    options: TrainOptions,
    *,
    announce: bool = True,
) -> FineTuneStart:
    """Read the source's weights and grow them to ``config`` (the extended vocabulary)."""
    model, how = source.load_model()
    target = build_model(config).state_dict()
    # the input rows of new tokens are drawn like the known ones (a tied matrix is the output
    # too: there the mean keeps each new token's first logit average)
    sampled = ("embedding.weight",) if options.new_rows == "sampled" and not config.tie else ()
    state = extend_state(
        model.state_dict(), target, extension.known, sampled=sampled, seed=options.seed
    )
    sha = source.sha256()
    lineage = {
        "name": source.name,
        "sha256": sha,
        "from": source.kind,
        "file": source.path.resolve().name,
        "vocab_size": extension.known,
        "added_tokens": list(extension.added),
    }
    parent = source.card.get("init_from")
    if isinstance(parent, dict):
        lineage["init_from"] = parent
    if announce:
        added = (
            describe_added(extension.added, source.level)
            + (
                " (their input rows are drawn like the known ones, their output rows start "
                "at the mean of the known rows)"
                if sampled
                else " (their rows start at the mean of the known rows)"
            )
            if extension.added
            else f"no new {'tokens' if source.level == 'bpe' else source.level + 's'}"
        )
        from termlm.textsafe import safe_line

        print(
            f"fine-tuning {safe_line(source.name)} ({source.kind}, sha256 {sha[:12]}): "
            f"{how}; {added}",
            file=sys.stderr,
        )
    return FineTuneStart(lineage, extension.known, options.freeze_embeddings, state)


def resumed(run_config: dict[str, Any], options: TrainOptions) -> FineTuneStart | None:
    """The fine-tuning facts of a run being resumed (its weights come from its checkpoint)."""
    lineage = run_config.get("init_from")
    if not options.init_from or not isinstance(lineage, dict):
        return None
    known = lineage.get("vocab_size")
    if not isinstance(known, int):
        raise RunError("the run's config.json has no source vocabulary size under 'init_from'")
    return FineTuneStart(lineage, known, options.freeze_embeddings, None)
