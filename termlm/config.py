"""The model's configuration: what a model is, shared by training, export and the runtime.

Pure standard library, so the runtime reads it from a model file's metadata without torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from termlm.errors import ConfigError

ARCHITECTURES = ("rnn", "lstm", "gru", "attention", "transformer")
LEVELS = ("word", "char", "bpe")
RECURRENT = ("rnn", "lstm", "gru")


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
        if self.arch == "transformer" and self.hidden % self.heads:
            raise ConfigError(
                f"the transformer's --hidden ({self.hidden}) must be divisible by --heads ({self.heads})"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
