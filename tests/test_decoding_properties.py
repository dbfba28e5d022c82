"""Property tests: processors keep shape and never make NaN; strategies stay in the vocabulary."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from termlm.decoding import StepInfo, build_plugin_manager, generate
from termlm.decoding.events import DoneEvent, TokenEvent
from termlm.decoding.testing import TinyRNN, WindowModel, char_tokenizer

TOK = char_tokenizer("abcdefg ", eos=True)
REGISTRY = build_plugin_manager(entry_points=False, user_dir=False)
PROCESSOR_VALUES: dict[str, Any] = {
    "repetition_penalty": st.floats(0.1, 10.0),
    "frequency_penalty": st.floats(-2.0, 2.0),
    "presence_penalty": st.floats(-2.0, 2.0),
    "no_repeat_ngram_size": st.integers(1, 4),
    "banned_words": st.sampled_from(["a", "a,b", "abc, g", "zz"]),
    "min_new_tokens": st.integers(1, 5),
    "utf8_only": st.booleans(),
}


@st.composite
def scores_and_history(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    rows = draw(st.integers(1, 4))
    values = st.one_of(st.floats(-50, 50, width=32), st.just(float("-inf")))
    logits = draw(arrays(np.float32, (rows, TOK.vocab_size), elements=values))
    length = draw(st.integers(0, 12))
    history = draw(arrays(np.int64, (rows, length), elements=st.integers(0, TOK.vocab_size - 1)))
    prompt = draw(st.integers(0, length))
    return logits, history, prompt


@settings(max_examples=150, deadline=None)
@given(data=scores_and_history(), choice=st.data())
def test_processors_keep_shape_and_never_nan(
    data: tuple[np.ndarray, np.ndarray, int], choice: st.DataObject
) -> None:
    logits, history, prompt = data
    info = StepInfo(
        prompt_length=prompt, vocab_size=TOK.vocab_size, eos_id=TOK.eos_id, tokenizer=TOK
    )
    before = logits.copy()
    for cls in REGISTRY.processor_classes():
        values = {o.name: choice.draw(PROCESSOR_VALUES[o.name]) for o in cls.options}
        proc = cls(**values)
        out = proc.process(logits, history, info)
        assert out.shape == logits.shape and out.dtype == np.float32
        assert not np.isnan(out).any()
        assert np.all(np.isneginf(out[np.isneginf(logits)]))  # banned stays banned
        np.testing.assert_array_equal(logits, before)  # the input is not changed


STRATEGY_OPTIONS: dict[str, Any] = {
    "greedy": st.just({}),
    "sample": st.fixed_dictionaries(
        {
            "temperature": st.floats(0.05, 10.0),
            "top_k": st.integers(0, 12),
            "top_p": st.floats(0.01, 1.0),
            "min_p": st.floats(0.0, 0.99),
            "typical_p": st.floats(0.01, 1.0),
        }
    ),
    "beam": st.integers(1, 6).map(lambda n: {"num_beams": n}),
    "lookahead": st.fixed_dictionaries(
        {"candidates": st.integers(1, 6), "depth": st.integers(1, 3)}
    ),
}


@settings(max_examples=40, deadline=None)
@given(
    strategy=st.sampled_from(sorted(STRATEGY_OPTIONS)),
    seed=st.integers(0, 2**16),
    window=st.booleans(),
    data=st.data(),
)
def test_strategies_stay_in_vocabulary(
    strategy: str, seed: int, window: bool, data: st.DataObject
) -> None:
    options = dict(data.draw(STRATEGY_OPTIONS[strategy]))
    if data.draw(st.booleans()):
        options["no_repeat_ngram_size"] = data.draw(st.integers(1, 3))
        options["repetition_penalty"] = data.draw(st.floats(0.5, 3.0))
    model = WindowModel(TOK.vocab_size, seed=seed) if window else TinyRNN(TOK.vocab_size, seed=seed)
    events = list(
        generate(
            model,
            TOK,
            "ab",
            registry=REGISTRY,
            strategy=strategy,
            options=options,
            max_new_tokens=12,
            seed=seed,
        )
    )
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.result.error is None
    assert done.result.stop_reason in ("length", "eos")
    ids = [e.token_id for e in events if isinstance(e, TokenEvent)]
    assert ids == done.result.token_ids
    assert all(0 <= i < TOK.vocab_size and i != TOK.eos_id for i in ids)
