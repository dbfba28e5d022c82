"""PyTorch language models. ``build_model(config)`` is the only constructor callers need."""

from __future__ import annotations

from termlm.config import ModelConfig
from termlm.training.models.attention import AttentionLM
from termlm.training.models.base import LanguageModel, StateSpec, StateTuple
from termlm.training.models.recurrent import RecurrentLM, WindowLM
from termlm.training.models.transformer import TransformerLM

__all__ = [
    "AttentionLM",
    "LanguageModel",
    "RecurrentLM",
    "StateSpec",
    "StateTuple",
    "TransformerLM",
    "WindowLM",
    "build_model",
]


def build_model(config: ModelConfig) -> LanguageModel:
    """The model ``config`` describes, freshly initialised. Validates the config first."""
    config.validate()
    if config.vocab_size <= 0:
        from termlm.errors import ConfigError

        raise ConfigError(
            f"the model needs a vocabulary size, got {config.vocab_size}",
            "build the tokenizer first and set vocab_size to its size",
        )
    if config.bidirectional:
        return WindowLM(config)
    if config.arch == "attention":
        return AttentionLM(config)
    if config.arch == "transformer":
        return TransformerLM(config)
    return RecurrentLM(config)
