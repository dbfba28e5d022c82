"""Beam search: equivalences, better sequences than greedy, one batched call per step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from termlm.decoding import PluginRegistry, build_plugin_manager, generate
from termlm.decoding.events import BeamsEvent, DoneEvent, GenerationResult, TokenEvent
from termlm.decoding.testing import BigramModel, CallCounter, MemoryModel, TinyRNN, char_tokenizer

TOK = char_tokenizer("abcdefghij ")


@pytest.fixture
def registry() -> PluginRegistry:
    return build_plugin_manager(entry_points=False, user_dir=False)


def result_of(events: list[Any]) -> GenerationResult:
    assert isinstance(events[-1], DoneEvent)
    return events[-1].result


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_greedy_equals_topk1_equals_one_beam(registry: PluginRegistry, seed: int) -> None:
    model = TinyRNN(TOK.vocab_size, seed=seed, sharpness=1.5)
    runs: list[tuple[str, dict[str, Any]]] = [
        ("greedy", {}),
        ("sample", {"top_k": 1, "temperature": 2.0}),
        ("beam", {"num_beams": 1}),
    ]
    ids = []
    for strategy, options in runs:
        events = list(
            generate(
                model,
                TOK,
                "abc",
                registry=registry,
                strategy=strategy,
                options=options,
                max_new_tokens=25,
                seed=seed,
            )
        )
        ids.append(result_of(events).token_ids)
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 25


def _myopic_table() -> np.ndarray:
    """From 'a': 'b' 0.55, 'c' 0.45. After 'b': eight tokens equally likely. After 'c': 'd'
    almost surely. Greedy takes 'b' and then pays; beam finds 'c d'."""
    a, b, c, d = TOK.encode("abcd")
    table = np.full((TOK.vocab_size, TOK.vocab_size), -30.0, dtype=np.float32)
    table[:, a] = 0.0
    table[a, a], table[a, b], table[a, c] = -30.0, np.log(0.55), np.log(0.45)
    table[b, a] = -30.0
    table[b, c : c + 8] = np.log(1 / 8)
    table[c, a], table[c, d] = -30.0, 0.0
    return table


def test_beam_beats_short_sighted_greedy(registry: PluginRegistry) -> None:
    model = BigramModel(_myopic_table())
    totals = {}
    for strategy, options in (("greedy", {}), ("beam", {"num_beams": 2})):
        events = list(
            generate(
                model,
                TOK,
                "a",
                registry=registry,
                strategy=strategy,
                options=options,
                max_new_tokens=2,
            )
        )
        result = result_of(events)
        totals[strategy] = sum(result.logprobs)
        if strategy == "beam":
            assert result.text == "cd"
    assert totals["greedy"] == pytest.approx(np.log(0.55) + np.log(1 / 8), abs=1e-4)
    assert totals["beam"] > totals["greedy"] + 1.0


def test_one_batched_call_per_step(registry: PluginRegistry) -> None:
    for inner in (TinyRNN(TOK.vocab_size, seed=4), MemoryModel(TOK.vocab_size, context=64)):
        model = CallCounter(inner)
        events = list(
            generate(
                model,
                TOK,
                "abcd",
                registry=registry,
                strategy="beam",
                options={"num_beams": 5},
                max_new_tokens=15,
            )
        )
        steps = [e for e in events if isinstance(e, BeamsEvent)]
        assert model.calls[0] == (1, 4)  # the prompt, once
        assert model.calls[1:] == [(5, 1)] * len(steps)  # one call per step, batch = beams
        assert len(steps) == 15
        assert all(len(e.beams) == 5 for e in steps)


def test_streaming_and_n_best(registry: PluginRegistry) -> None:
    model = TinyRNN(TOK.vocab_size, seed=3, sharpness=1.0)
    events = list(
        generate(
            model,
            TOK,
            "ab",
            registry=registry,
            strategy="beam",
            options={"num_beams": 4, "num_return_sequences": 3},
            max_new_tokens=20,
        )
    )
    result = result_of(events)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert [t.token_id for t in tokens] == result.token_ids and len(result.token_ids) == 20
    assert "".join(t.text for t in tokens) == result.text
    assert len(result.n_best) == 3
    assert result.n_best[0].token_ids == tuple(result.token_ids)
    scores = [b.score for b in result.n_best]
    assert scores == sorted(scores, reverse=True)
    # some text was settled before the search ended (streamed early)
    first_token = next(i for i, e in enumerate(events) if isinstance(e, TokenEvent))
    last_beams = max(i for i, e in enumerate(events) if isinstance(e, BeamsEvent))
    assert first_token < last_beams
    # the final state continues exactly after the best reply
    again = list(
        generate(
            model,
            TOK,
            "",
            registry=registry,
            strategy="greedy",
            state=result.state,
            max_new_tokens=5,
        )
    )
    direct = list(
        generate(
            model,
            TOK,
            [*TOK.encode("ab"), *result.token_ids],
            registry=registry,
            strategy="greedy",
            max_new_tokens=5,
        )
    )
    assert result_of(again).token_ids == result_of(direct).token_ids


def test_beam_score_is_length_penalised_logprob(registry: PluginRegistry) -> None:
    model = TinyRNN(TOK.vocab_size, seed=6)
    for penalty in (0.0, 1.0):
        events = list(
            generate(
                model,
                TOK,
                "ab",
                registry=registry,
                strategy="beam",
                options={"num_beams": 3, "length_penalty": penalty},
                max_new_tokens=10,
            )
        )
        result = result_of(events)
        expected = sum(result.logprobs) / (10**penalty)
        assert result.n_best[0].score == pytest.approx(expected, rel=1e-5)
