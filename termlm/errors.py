"""Errors a user can act on. The CLI prints them as one or two lines and exits 1."""

from __future__ import annotations


class TermlmError(Exception):
    """An error with a message meant for the user: what is wrong, and what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class CorpusError(TermlmError):
    """The training or evaluation text cannot be used."""


class ConfigError(TermlmError):
    """Options that do not make sense together, or out of range."""


class ModelFileError(TermlmError):
    """A model file that termlm cannot or will not load."""


class TokenizerError(TermlmError):
    """A tokenizer description that cannot be read."""


class PluginError(TermlmError):
    """A decoding plugin failed to load, was misconfigured, or raised."""


class RunError(TermlmError):
    """A training run folder that is missing or does not match."""
