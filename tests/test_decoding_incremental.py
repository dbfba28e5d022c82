"""The incremental pieces of the generation loop agree with their rescanning references.

* Every built-in processor's tracker gives exactly what ``process`` gives on the whole history,
  through forks and reorders of rows (as beam search and lookahead make them).
* A session's token tree gives the same ``generated`` as appending columns would.
* Fast processors and slow (history-reading) ones mix in one chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from termlm.decoding import (
    Choice,
    DecodeContext,
    OptionSpec,
    PluginRegistry,
    StepInfo,
    build_plugin_manager,
    generate,
)
from termlm.decoding.events import BeamsEvent, DoneEvent, TokenEvent
from termlm.decoding.session import start_session
from termlm.decoding.testing import TinyRNN, char_tokenizer

TOK = char_tokenizer("abcde", eos=True)
V = TOK.vocab_size
REGISTRY = build_plugin_manager(entry_points=False, user_dir=False)
VALUES: dict[str, Any] = {
    "repetition_penalty": st.floats(0.1, 10.0),
    "frequency_penalty": st.floats(-2.0, 2.0),
    "presence_penalty": st.floats(-2.0, 2.0),
    "no_repeat_ngram_size": st.integers(1, 5),
    "banned_words": st.sampled_from(["a", "a,b", "zz"]),
    "min_new_tokens": st.integers(1, 30),
    "utf8_only": st.just(True),
}
ROWS = 3
# one step: which rows survive (repeats allowed) and an offset for the tokens they read
STEPS = st.lists(
    st.tuples(
        st.lists(st.integers(0, ROWS - 1), min_size=ROWS, max_size=ROWS), st.integers(0, 100)
    ),
    max_size=120,
)


@settings(max_examples=120, deadline=None)
@given(
    prompt=st.lists(st.integers(0, V - 1), max_size=8),
    steps=STEPS,
    data=st.data(),
)
def test_trackers_agree_with_process_through_forks(
    prompt: list[int], steps: list[tuple[list[int], int]], data: st.DataObject
) -> None:
    info = StepInfo(prompt_length=len(prompt), vocab_size=V, eos_id=TOK.eos_id, tokenizer=TOK)
    rng = np.random.default_rng(len(steps))
    for cls in REGISTRY.processor_classes():
        if not callable(getattr(cls, "start", None)) or not cls.__module__.endswith(
            ("plugins.processors", "plugins.utf8")
        ):
            continue
        proc = cls(**{o.name: data.draw(VALUES[o.name], label=o.name) for o in cls.options})
        history = np.array([prompt] * ROWS, dtype=np.int64).reshape(ROWS, -1)
        tracker = proc.start(history, info)
        if tracker is None:  # nothing to do for this tokenizer: process leaves the scores be
            logits = rng.normal(0, 3, size=(ROWS, V)).astype(np.float32)
            np.testing.assert_array_equal(proc.process(logits, history, info), logits)
            continue
        for rows, offset in steps:
            index = np.array(rows)
            kept = tracker.select(index)  # the old tracker stays valid
            history = history[index]
            tokens = (np.arange(ROWS) * 2 + offset) % V
            kept.push(tokens)
            history = np.concatenate([history, tokens[:, None]], axis=1)
            logits = rng.normal(0, 3, size=(ROWS, V)).astype(np.float32)
            logits[:, 0] = -np.inf
            np.testing.assert_array_equal(
                kept.process(logits), proc.process(logits, history, info), err_msg=proc.name
            )
            tracker = kept


@settings(max_examples=60, deadline=None)
@given(steps=STEPS, ask_early=st.booleans())
def test_session_tree_matches_appended_columns(
    steps: list[tuple[list[int], int]], ask_early: bool
) -> None:
    model = TinyRNN(V, hidden=4, seed=1)
    session, _ = start_session(model, [3, 4], None)
    session = session.select([0] * ROWS)
    expected = np.zeros((ROWS, 0), dtype=np.int64)
    if ask_early:  # a reader from the start: the session keeps a copy up to date
        assert session.generated.shape == (ROWS, 0)
    for rows, offset in steps:
        index = np.array(rows)
        session = session.select(index)
        expected = expected[index]
        tokens = (np.arange(ROWS) + offset) % V
        session.feed(tokens)
        expected = np.concatenate([expected, tokens[:, None]], axis=1)
    np.testing.assert_array_equal(session.generated, expected)
    np.testing.assert_array_equal(session.history()[:, 2:], expected)
    assert session.length == expected.shape[1]


class _LastTokenBonus:
    """A processor without a tracker: it reads the history at every step."""

    name: ClassVar[str] = "last-token-bonus"
    description: ClassVar[str] = "test"
    options: ClassVar[tuple[OptionSpec, ...]] = ()

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        out = logits.copy()
        if history.shape[1]:
            out[np.arange(out.shape[0]), history[:, -1]] += 2.0
        return out


def _tokens(registry: PluginRegistry, strategy: str, **options: Any) -> list[int]:
    model = TinyRNN(V, hidden=8, seed=3, sharpness=2.0)
    events = list(
        generate(
            model,
            TOK,
            "abc",
            registry=registry,
            strategy=strategy,
            options=options,
            max_new_tokens=30,
            seed=4,
        )
    )
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.result.error is None, done
    return done.result.token_ids


def test_fast_and_slow_processors_mix_in_one_chain() -> None:
    """A history-reading processor between trackers sees the same history as before."""
    plain = build_plugin_manager(entry_points=False, user_dir=False)
    mixed = build_plugin_manager(entry_points=False, user_dir=False)
    mixed.add(_LastTokenBonus, "test")
    for strategy in ("greedy", "beam", "lookahead"):
        options = {"no_repeat_ngram_size": 3, "repetition_penalty": 1.2}
        without = _tokens(plain, strategy, **options)
        with_bonus = _tokens(mixed, strategy, **options)
        assert without != with_bonus  # the bonus was applied, and the n-gram ban still held:
        grams = [tuple(with_bonus[i : i + 3]) for i in range(len(with_bonus) - 2)]
        assert len(grams) == len(set(grams)), strategy


class _History:
    """A strategy that drives the session by hand and scores through the slow path."""

    name: ClassVar[str] = "by-hand"
    description: ClassVar[str] = "test"
    options: ClassVar[tuple[OptionSpec, ...]] = ()

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        while True:
            scores = ctx.process(ctx.session.logits, ctx.session.history())[0]
            token = int(np.argmax(scores))
            ctx.session.feed([token])
            yield ctx.choice(scores, token)


def test_the_slow_path_gives_the_same_tokens_as_the_fast_one() -> None:
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    registry.add(_History, "test")
    options = {"no_repeat_ngram_size": 2, "frequency_penalty": 0.7, "min_new_tokens": 5}
    assert _tokens(registry, "by-hand", **options) == _tokens(registry, "greedy", **options)


def test_alternatives_and_live_beams_only_when_wanted() -> None:
    model = TinyRNN(V, hidden=8, seed=3, sharpness=2.0)

    def run(**wants: Any) -> list[Any]:
        return list(
            generate(
                model,
                TOK,
                "ab",
                registry=REGISTRY,
                strategy="beam",
                options={"num_beams": 3},
                max_new_tokens=12,
                **wants,
            )
        )

    full, bare = run(), run(alternatives=0, live_beams=False)
    assert any(isinstance(e, BeamsEvent) for e in full)
    assert not any(isinstance(e, BeamsEvent) for e in bare)
    assert full[-1].result.token_ids == bare[-1].result.token_ids
    # beams' texts kept as they grow equal their whole decoding
    for event in full:
        if isinstance(event, BeamsEvent):
            for beam in event.beams:
                assert beam.text == TOK.decode(list(beam.token_ids))
    greedy = list(generate(model, TOK, "ab", registry=REGISTRY, strategy="greedy", alternatives=2))
    tokens = [e for e in greedy if isinstance(e, TokenEvent)]
    assert tokens and all(len(e.alternatives) == 2 for e in tokens)
    none = list(generate(model, TOK, "ab", registry=REGISTRY, strategy="greedy", alternatives=0))
    assert all(e.alternatives == () for e in none if isinstance(e, TokenEvent))
    assert [e.token_id for e in none if isinstance(e, TokenEvent)] == [e.token_id for e in tokens]


@settings(max_examples=300, deadline=None)
@given(
    x=arrays(
        np.float64,
        st.integers(1, 80),
        elements=st.one_of(st.floats(-60, 60), st.just(float("-inf"))),
    ),
    top_p=st.floats(0.01, 0.999),
)
def test_the_one_row_nucleus_path_gives_the_same_bits(x: np.ndarray, top_p: float) -> None:
    from termlm.decoding import sampling

    fast = sampling.warp(x, temperature=1.0, top_p=top_p)
    reference = np.exp(sampling.log_softmax(sampling.top_p_filter(x, top_p)))
    np.testing.assert_array_equal(fast, reference)


@settings(max_examples=40, deadline=None)
@given(steps=STEPS, prompt=st.lists(st.integers(0, 279), max_size=6))
def test_the_utf8_tracker_agrees_with_process_on_a_byte_level_bpe(
    steps: list[tuple[list[int], int]], prompt: list[int]
) -> None:
    from termlm.builtin_plugins.utf8 import ValidUtf8

    from termlm.tokenizers.bpe import BpeTokenizer

    tokenizer = _bpe(BpeTokenizer)
    size = tokenizer.vocab_size
    info = StepInfo(prompt_length=len(prompt), vocab_size=size, eos_id=0, tokenizer=tokenizer)
    proc = ValidUtf8()
    history = np.array([[t % size for t in prompt]] * ROWS, dtype=np.int64).reshape(ROWS, -1)
    tracker = proc.start(history, info)
    logits = np.zeros((ROWS, size), dtype=np.float32)
    for rows, offset in steps:
        index = np.array(rows)
        tracker, history = tracker.select(index), history[index]
        tokens = (np.arange(ROWS) * 37 + offset * 11) % size
        tracker.push(tokens)
        history = np.concatenate([history, tokens[:, None]], axis=1)
        np.testing.assert_array_equal(tracker.process(logits), proc.process(logits, history, info))


_BPE: list[Any] = []


def _bpe(cls: Any) -> Any:
    if not _BPE:
        text = "".join("我们的生活很好。你好吗？今天天气不错，明天见。" for _ in range(60))
        _BPE.append(cls.fit(text, vocab_size=280))
    return _BPE[0]


class _Bans:
    """Greedy that records, at every step, what ``logit_bans`` says and what the scores are."""

    name: ClassVar[str] = "bans"
    description: ClassVar[str] = "test"
    options: ClassVar[tuple[OptionSpec, ...]] = ()
    seen: ClassVar[list[tuple[tuple[int, ...] | None, np.ndarray, np.ndarray]]] = []

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        while True:
            bans = ctx.logit_bans()
            scores = ctx.scores()[0]
            _Bans.seen.append((bans, ctx.session.logits[0].copy(), scores))
            token = int(np.argmax(scores))
            ctx.session.feed([token])
            yield ctx.choice(scores, token)


def test_logit_bans_says_when_the_scores_are_the_logits_with_ids_banned() -> None:
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    registry.add(_Bans, "test")
    for options, idle in (
        ({}, True),
        ({"utf8_only": True}, True),  # nothing to do on whole characters: left out
        ({"repetition_penalty": 1.3}, False),
        ({"banned_words": "a"}, False),
    ):
        _Bans.seen.clear()
        _tokens(registry, "bans", **options)
        assert _Bans.seen
        for bans, logits, scores in _Bans.seen:
            if not idle:
                assert bans is None
                continue
            assert bans is not None and set(bans) == {TOK.pad_id, TOK.unk_id}
            expected = logits.copy()
            expected[list(bans)] = -np.inf
            np.testing.assert_array_equal(scores, np.where(np.isnan(expected), -np.inf, expected))
