"""Padding and the unknown-word token are never generated, whatever the model prefers."""

from __future__ import annotations

import numpy as np
import pytest

from termlm.decoding import build_plugin_manager, generate
from termlm.decoding.events import DoneEvent
from termlm.decoding.testing import BigramModel, char_tokenizer


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_pad_and_unk_are_never_emitted(strategy: str) -> None:
    tokenizer = char_tokenizer("abc ")
    vocab = tokenizer.vocab_size
    table = np.zeros((vocab, vocab), dtype=np.float32)
    table[:, tokenizer.pad_id] = 50.0  # the model loves padding...
    if tokenizer.unk_id is not None:
        table[:, tokenizer.unk_id] = 40.0  # ...and the unknown token
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    events = list(
        generate(
            BigramModel(table),
            tokenizer,
            "ab",
            registry=registry,
            strategy=strategy,
            max_new_tokens=30,
            seed=0,
        )
    )
    result = events[-1].result if isinstance(events[-1], DoneEvent) else None
    assert result is not None and len(result.token_ids) == 30
    assert tokenizer.pad_id not in result.token_ids
    assert tokenizer.unk_id not in result.token_ids
