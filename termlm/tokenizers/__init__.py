"""Tokenizers: word, char and byte-level BPE. Pure Python and numpy, no torch."""

from termlm.tokenizers.base import (
    KINDS,
    Tokenizer,
    encode_array,
    fit_tokenizer,
    tokenizer_from_json,
)

__all__ = ["KINDS", "Tokenizer", "encode_array", "fit_tokenizer", "tokenizer_from_json"]
