"""A branch continues a reply from its kept tokens: read after the prompt on the same state and
counted as reply by the processors, so it goes on exactly as the original did."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.decoding import build_plugin_manager, generate
from termlm.decoding.events import DoneEvent, GenerationResult, TokenEvent
from termlm.decoding.testing import MemoryModel, TinyRNN, char_tokenizer

TOK = char_tokenizer("abcdefgh \n")
REGISTRY = build_plugin_manager(entry_points=False, user_dir=False)
PENALTIES = {"frequency_penalty": 1.5, "presence_penalty": 0.5}


def run(model: Any, prompt: Any, **kw: Any) -> tuple[GenerationResult, list[TokenEvent]]:
    events = list(generate(model, TOK, prompt, registry=REGISTRY, strategy="greedy", **kw))
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done.result, [e for e in events if isinstance(e, TokenEvent)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 50), keep=st.integers(0, 15))
def test_a_branch_with_the_same_token_continues_as_the_original(seed: int, keep: int) -> None:
    model = TinyRNN(TOK.vocab_size, seed=seed)
    original, _ = run(model, "abc", options=PENALTIES, max_new_tokens=16)
    kept = original.token_ids[:keep]
    branch, events = run(
        model, "abc", options=PENALTIES, max_new_tokens=16 - keep, reply_prefix=kept
    )
    assert kept + branch.token_ids == original.token_ids
    assert [e.index for e in events] == list(range(len(branch.token_ids)))  # new tokens only
    assert branch.state is not None and original.state is not None
    assert branch.state["_recent"].tolist() == original.state["_recent"].tolist()


def test_kept_tokens_fed_as_prompt_are_not_the_same_thing() -> None:
    """The old way (kept tokens read again as prompt) lost the penalties on them."""
    model = TinyRNN(TOK.vocab_size, seed=3, sharpness=1.0)
    original, _ = run(model, "abc", options=PENALTIES, max_new_tokens=24)
    kept = original.token_ids[:12]
    as_reply, _ = run(model, "abc", options=PENALTIES, max_new_tokens=12, reply_prefix=kept)
    as_prompt, _ = run(model, TOK.encode("abc") + kept, options=PENALTIES, max_new_tokens=12)
    assert kept + as_reply.token_ids == original.token_ids
    assert as_prompt.token_ids != as_reply.token_ids


def test_a_long_branch_on_a_bounded_memory_is_not_cut_as_a_prompt() -> None:
    model = MemoryModel(TOK.vocab_size, seed=1, context=16)
    original, _ = run(model, "ab", max_new_tokens=30)
    kept = original.token_ids[:20]
    branch, _ = run(model, "ab", max_new_tokens=10, reply_prefix=kept)
    assert branch.prompt_tokens_dropped == 0  # the prompt is two tokens, never cut
    assert len(branch.token_ids) == 10


def test_reply_prefix_ids_are_checked() -> None:
    from termlm.errors import ConfigError

    with pytest.raises(ConfigError, match="outside the vocabulary"):
        generate(TinyRNN(TOK.vocab_size), TOK, "a", registry=REGISTRY, reply_prefix=[999])
