"""The model's configuration: what a model is, shared by training, export and the runtime.

Pure standard library, so the runtime reads it from a model file's metadata without torch.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from termlm.errors import ConfigError

ARCHITECTURES = ("rnn", "lstm", "gru", "attention", "transformer")
LEVELS = ("word", "char", "bpe")
RECURRENT = ("rnn", "lstm", "gru")
SOFTMAXES = ("full", "adaptive")

# The largest model termlm builds: each size, and an upper estimate of the weights in all
# (2**30 float32 weights are 4 GiB). Beyond these a typo or a damaged file, not a plan.
LIMITS = {
    "vocab_size": 1 << 24,
    "context": 1 << 16,
    "embed": 1 << 16,
    "hidden": 1 << 16,
    "layers": 256,
    "heads": 1024,
    "attn_size": 1 << 16,
}
MAX_WEIGHTS = 1 << 30


@dataclass
class ModelConfig:
    """Hyper-parameters of one model. Stored in run folders and in exported files."""

    arch: str = "lstm"
    vocab_size: int = 0
    context: int = 128  # training window in tokens; also the window of bidirectional models
    embed: int = 128  # embedding size
    hidden: int = 256  # hidden size (d_model for the transformer)
    layers: int = 2
    heads: int = 4  # transformer only
    dropout: float = 0.1
    tie: bool = False  # tie input and output embeddings (needs embed == hidden, or a projection)
    bidirectional: bool = False  # window model: reads the window both ways, predicts the next token
    attn_size: int = 0  # attention model: size of the additive attention space (0: hidden)
    # word-level output layer and regularisation (rnn, lstm, gru; docs in training/models/)
    softmax: str = "full"  # full, or adaptive: clusters of rarer words (Grave et al. 2017)
    cutoffs: list[int] = field(default_factory=list)  # adaptive: where the clusters start
    embed_dropout: float = 0.0  # drop whole words from the input embedding
    weight_drop: float = 0.0  # DropConnect on the recurrent matrices
    locked_dropout: bool = False  # one dropout mask per sequence, shared by every step
    ar: float = 0.0  # activation regularisation: ar * mean(output**2)
    tar: float = 0.0  # temporal activation regularisation: tar * mean(step-to-step change**2)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stateful(self) -> bool:
        """Whether generation can carry state from token to token (one step per token)."""
        return not self.bidirectional

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(
                f"unknown architecture {self.arch!r}",
                f"choose one of: {', '.join(ARCHITECTURES)}",
            )
        if self.bidirectional and self.arch not in RECURRENT:
            raise ConfigError(
                f"--bidirectional works with rnn, lstm and gru, not {self.arch}",
                "drop --bidirectional, or pick --arch rnn|lstm|gru",
            )
        for name in ("context", "embed", "hidden", "layers", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"--{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        self._validate_word_options()
        if self.arch == "transformer" and self.hidden % self.heads:
            raise ConfigError(
                f"the transformer's --hidden ({self.hidden}) must be divisible by --heads ({self.heads})"
            )

    def _validate_word_options(self) -> None:
        for name in ("embed_dropout", "weight_drop"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1), got {value}")
        for name in ("ar", "tar"):
            if not getattr(self, name) >= 0.0:
                raise ConfigError(f"--{name} must be 0 or more, got {getattr(self, name)}")
        if self.softmax not in SOFTMAXES:
            raise ConfigError(
                f"unknown --softmax {self.softmax!r}", f"choose one of: {', '.join(SOFTMAXES)}"
            )
        regularised = self.weight_drop or self.ar or self.tar or self.locked_dropout
        if (self.softmax != "full" or regularised) and (
            self.arch not in RECURRENT or self.bidirectional
        ):
            raise ConfigError(
                "--softmax adaptive, --weight-drop, --locked-dropout, --ar and --tar work with "
                f"rnn, lstm and gru (not bidirectional), not {self.arch}",
                "drop them, or pick --arch rnn|lstm|gru",
            )
        cuts = self.cutoffs
        if cuts and (
            any(not isinstance(c, int) or isinstance(c, bool) for c in cuts)
            or cuts[0] < 2
            or any(b <= a for a, b in itertools.pairwise(cuts))
            or (self.vocab_size > 0 and cuts[-1] >= self.vocab_size)
        ):
            raise ConfigError(
                f"--cutoffs must rise from 2 and stay under the vocabulary size, got {cuts}",
                "for example --cutoffs 1000,3000 for 6,000 words, or leave them to be chosen",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def estimated_weights(config: ModelConfig) -> int:
    """An upper estimate of the model's weights, for every architecture (no torch needed)."""
    width = max(config.embed, config.hidden, config.attn_size)
    # four gates of two matrices (lstm, the most of rnn/lstm/gru); attention and MLP blocks
    per_layer = (8 if config.arch in RECURRENT else 12) * width * width
    directions = 2 if config.bidirectional else 1
    return (
        config.vocab_size * (config.embed + config.hidden)  # embedding and output
        + config.layers * per_layer * directions
        + config.context * width  # positions
    )


def check_limits(
    config: ModelConfig, label: Callable[[str], str] = lambda name: f"--{name}"
) -> None:
    """ConfigError when a size is past LIMITS or the whole model past MAX_WEIGHTS.

    ``label`` names a field in the message (``--hidden`` on the command line, ``model.hidden``
    for a file)."""
    for name, top in LIMITS.items():
        value = getattr(config, name)
        if isinstance(value, int) and not isinstance(value, bool) and value > top:
            raise ConfigError(
                f"{label(name)} must be at most {top:,}, got {value:,}",
                f"termlm builds models of up to {MAX_WEIGHTS:,} weights",
            )
    weights = estimated_weights(config)
    if weights > MAX_WEIGHTS:
        raise ConfigError(
            f"those sizes make a model of about {weights:,} weights, over the {MAX_WEIGHTS:,} "
            "termlm builds",
            "use a smaller --hidden, --embed, --layers or --context",
        )


def _kind(default: Any) -> tuple[Callable[[Any], bool], str]:
    if isinstance(default, bool):
        return (lambda v: isinstance(v, bool)), "true or false"
    if isinstance(default, int):
        return (lambda v: isinstance(v, int) and not isinstance(v, bool)), "a whole number"
    if isinstance(default, float):
        return (
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ), "a number"
    if isinstance(default, str):
        return (lambda v: isinstance(v, str)), "a string"
    if isinstance(default, list):  # cutoffs
        return (
            lambda v: (
                isinstance(v, list)
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
            )
        ), "a list of whole numbers"
    return (lambda v: isinstance(v, dict)), "an object"


def config_from_file(raw: Any) -> ModelConfig:
    """A ModelConfig from JSON read from a file, every field's type and range checked.

    ConfigError names the field as ``model.NAME``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"'model' must be an object, got {type(raw).__name__}")
    defaults = ModelConfig()
    for f in dataclasses.fields(ModelConfig):
        if f.name in raw:
            ok, kind = _kind(getattr(defaults, f.name))
            if not ok(raw[f.name]):
                raise ConfigError(f"model.{f.name} must be {kind}, got {raw[f.name]!r:.60}")
    config = ModelConfig.from_dict(raw)
    if config.vocab_size < 1 or config.attn_size < 0:
        name = "vocab_size" if config.vocab_size < 1 else "attn_size"
        raise ConfigError(f"model.{name} must be positive, got {getattr(config, name)}")
    check_limits(config, lambda name: f"model.{name}")
    try:
        config.validate()
    except ConfigError as exc:
        raise ConfigError(exc.message.replace("--", "model.", 1), exc.hint) from None
    return config
