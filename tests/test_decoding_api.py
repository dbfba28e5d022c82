"""The decoding API: options, errors, events, state continuation, cancellation, special models."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from termlm.decoding import (
    Choice,
    DecodeContext,
    OptionSpec,
    PluginRegistry,
    build_plugin_manager,
    generate,
    validate_options,
)
from termlm.decoding.events import DoneEvent, GenerationResult, TokenEvent
from termlm.decoding.testing import (
    CallCounter,
    MemoryModel,
    TinyRNN,
    WindowModel,
    char_tokenizer,
)
from termlm.errors import ConfigError, PluginError

TOK = char_tokenizer("abcdefghij ")


@pytest.fixture
def registry() -> PluginRegistry:
    return build_plugin_manager(entry_points=False, user_dir=False)


def run(model: Any, prompt: Any, registry: PluginRegistry, **kw: Any) -> GenerationResult:
    events = list(generate(model, TOK, prompt, registry=registry, **kw))
    done = [e for e in events if isinstance(e, DoneEvent)]
    assert len(done) == 1 and events[-1] is done[0]
    return done[0].result


def test_builtins_loaded(registry: PluginRegistry) -> None:
    assert {"greedy", "sample", "beam"} <= set(registry.strategy_names())
    assert all(info.source == "builtin" and info.error is None for info in registry.infos())
    names = [o.name for o in registry.options_for("sample")]
    assert names[:5] == ["temperature", "top_k", "top_p", "min_p", "typical_p"]
    assert "repetition_penalty" in names and "banned_words" in names


def test_validate_options_coerces_and_fills_defaults(registry: PluginRegistry) -> None:
    values = validate_options(registry, "sample", {"temperature": "0.7", "top_k": "5"})
    assert values["temperature"] == 0.7 and values["top_k"] == 5
    assert values["top_p"] == 0.95 and values["repetition_penalty"] == 1.0
    beam = validate_options(registry, "beam", {"early_stopping": "true", "num_beams": 3.0})
    assert beam["early_stopping"] is True and beam["num_beams"] == 3


@pytest.mark.parametrize(
    ("strategy", "values", "message"),
    [
        ("sample", {"temperature": 0}, "temperature must be in (0, 10], got 0"),
        ("sample", {"temperature": "hot"}, "temperature must be a number"),
        ("sample", {"top_p": 1.5}, "top_p must be in (0, 1], got 1.5"),
        ("sample", {"top_k": -1}, "top_k must be >= 0, got -1"),
        ("beam", {"num_beams": 33}, "num_beams must be in [1, 32], got 33"),
        ("beam", {"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences (3)"),
        ("sample", {"tempreature": 1.0}, "unknown option 'tempreature'"),
    ],
)
def test_bad_options_refused(
    registry: PluginRegistry, strategy: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(PluginError) as info:
        validate_options(registry, strategy, values)
    assert message in str(info.value)


def test_unknown_key_lists_valid_keys(registry: PluginRegistry) -> None:
    with pytest.raises(PluginError) as info:
        validate_options(registry, "greedy", {"temp": 1})
    assert "repetition_penalty" in (info.value.hint or "")


def test_generate_validates_before_any_event(registry: PluginRegistry) -> None:
    model = TinyRNN(TOK.vocab_size)
    with pytest.raises(PluginError) as info:
        generate(model, TOK, "ab", registry=registry, strategy="nucleus")
    assert "greedy" in str(info.value) and "sample" in str(info.value)
    with pytest.raises(PluginError):
        generate(model, TOK, "ab", registry=registry, options={"temperature": -1})
    with pytest.raises(ConfigError):
        generate(model, TOK, [999], registry=registry)


def test_events_and_result(registry: PluginRegistry) -> None:
    model = TinyRNN(TOK.vocab_size, seed=3)
    events = list(
        generate(model, TOK, "abc", registry=registry, strategy="greedy", max_new_tokens=12)
    )
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    result = events[-1].result  # type: ignore[union-attr]
    assert len(tokens) == 12 and result.stop_reason == "length"
    assert [t.token_id for t in tokens] == result.token_ids
    assert "".join(t.text for t in tokens) == result.text == TOK.decode(result.token_ids)
    assert [t.index for t in tokens] == list(range(12))
    for t in tokens:
        assert 0 < t.prob <= 1 and t.logprob == pytest.approx(np.log(t.prob), abs=1e-5)
        assert len(t.alternatives) == 5 and t.alternatives[0].token_id == t.token_id
    assert result.state is not None and "_logits" in result.state


def test_same_seed_same_text(registry: PluginRegistry) -> None:
    model = TinyRNN(TOK.vocab_size, seed=1, sharpness=1.0)
    texts = [run(model, "ab", registry, seed=s, max_new_tokens=40).text for s in (7, 7, 8)]
    assert texts[0] == texts[1] != texts[2]


def test_continue_from_state_equals_one_go(registry: PluginRegistry) -> None:
    for model in (
        TinyRNN(TOK.vocab_size, seed=2),
        MemoryModel(TOK.vocab_size, context=12),
        WindowModel(TOK.vocab_size),
    ):
        whole = run(model, "abc", registry, strategy="greedy", max_new_tokens=30)
        first = run(model, "abc", registry, strategy="greedy", max_new_tokens=13)
        second = run(model, "", registry, strategy="greedy", max_new_tokens=17, state=first.state)
        assert first.token_ids + second.token_ids == whole.token_ids


def test_prompt_on_top_of_state(registry: PluginRegistry) -> None:
    model = TinyRNN(TOK.vocab_size, seed=2)
    first = run(model, "abc", registry, strategy="greedy", max_new_tokens=5)
    joined = TOK.decode(TOK.encode("abc") + first.token_ids) + "de"
    then = run(model, "de", registry, strategy="greedy", max_new_tokens=8, state=first.state)
    direct = run(model, joined, registry, strategy="greedy", max_new_tokens=8)
    assert then.token_ids == direct.token_ids


def test_empty_prompt_without_state_starts_from_pad(registry: PluginRegistry) -> None:
    for model in (TinyRNN(TOK.vocab_size), WindowModel(TOK.vocab_size)):
        result = run(model, "", registry, strategy="greedy", max_new_tokens=5)
        assert result.stop_reason == "length" and len(result.token_ids) == 5


def test_window_model_gets_whole_window(registry: PluginRegistry) -> None:
    model = CallCounter(WindowModel(TOK.vocab_size, context=6))
    result = run(model, "abcdefghij", registry, strategy="greedy", max_new_tokens=5)
    assert result.prompt_tokens_dropped == 4
    assert set(model.calls) == {(1, 6)}


def test_bounded_memory_never_exceeds_context(registry: PluginRegistry) -> None:
    inner = MemoryModel(TOK.vocab_size, context=10)
    lengths: list[int] = []

    class Watch(CallCounter):
        def step(self, tokens: np.ndarray, state: dict[str, np.ndarray]) -> Any:
            out = super().step(tokens, state)
            lengths.append(out.state["mem"].shape[1])
            return out

    for strategy in ("greedy", "beam"):
        result = run(Watch(inner), "abcdefghijabc", registry, strategy=strategy, max_new_tokens=40)
        assert result.stop_reason == "length" and len(result.token_ids) == 40
        assert result.prompt_tokens_dropped == 3
    assert max(lengths) <= 10 and min(lengths) <= 6


def test_cancel_between_steps(registry: PluginRegistry) -> None:
    model = TinyRNN(TOK.vocab_size)
    cancel = threading.Event()
    seen = 0
    for event in generate(model, TOK, "ab", registry=registry, max_new_tokens=100, cancel=cancel):
        if isinstance(event, TokenEvent):
            seen += 1
            if seen == 3:
                cancel.set()
        else:
            assert event.result.stop_reason == "cancelled"  # type: ignore[union-attr]
            assert len(event.result.token_ids) == 3  # type: ignore[union-attr]
    assert seen == 3


def test_eos_stops_and_is_not_shown(registry: PluginRegistry) -> None:
    tok = char_tokenizer("ab", eos=True)  # ids: pad 0, unk 1, eos 2, a 3, b 4
    table = np.full((5, 5), -5.0, dtype=np.float32)
    table[3, 4] = 5.0  # a -> b
    table[4, 2] = 5.0  # b -> eos
    from termlm.decoding.testing import BigramModel

    for strategy in ("greedy", "beam"):
        events = list(generate(BigramModel(table), tok, "a", registry=registry, strategy=strategy))
        result = events[-1].result  # type: ignore[union-attr]
        assert result.stop_reason == "eos" and result.text == "b" and result.token_ids == [4]


class _Exploding:
    name: ClassVar[str] = "exploding"
    description: ClassVar[str] = "Raises after two tokens."
    options: ClassVar[tuple[OptionSpec, ...]] = ()

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        for _ in range(2):
            scores = ctx.scores()[0]
            token = int(np.argmax(scores))
            ctx.session.feed([token])
            yield ctx.choice(scores, token)
        raise RuntimeError("boom")


class _OutOfVocab:
    name: ClassVar[str] = "out-of-vocab"
    description: ClassVar[str] = "Yields an id past the vocabulary."
    options: ClassVar[tuple[OptionSpec, ...]] = ()

    def run(self, ctx: DecodeContext) -> Iterator[Choice]:
        yield Choice(token_id=3, prob=1.0, logprob=0.0)
        yield Choice(token_id=ctx.vocab_size + 5, prob=1.0, logprob=0.0)


class _BrokenProcessor:
    name: ClassVar[str] = "broken"
    description: ClassVar[str] = "Raises when asked."
    options: ClassVar[tuple[OptionSpec, ...]] = (OptionSpec("explode", bool, False),)

    def __init__(self, explode: bool = False) -> None:
        self.active = explode

    def process(self, logits: np.ndarray, history: np.ndarray, info: Any) -> np.ndarray:
        raise ValueError("bad processor")


def test_plugin_raising_mid_generation(registry: PluginRegistry) -> None:
    registry.add(_Exploding, "test")
    result = run(TinyRNN(TOK.vocab_size), "ab", registry, strategy="exploding", max_new_tokens=10)
    assert result.stop_reason == "error" and len(result.token_ids) == 2
    assert result.error is not None and "exploding" in result.error and "boom" in result.error
    assert result.text == TOK.decode(result.token_ids)


def test_invalid_token_id_is_caught(registry: PluginRegistry) -> None:
    registry.add(_OutOfVocab, "test")
    result = run(TinyRNN(TOK.vocab_size), "ab", registry, strategy="out-of-vocab")
    assert result.stop_reason == "error" and result.token_ids == [3]
    assert "outside the vocabulary" in (result.error or "")


def test_processor_raising_is_an_error_event(registry: PluginRegistry) -> None:
    registry.add(_BrokenProcessor, "test")
    ok = run(TinyRNN(TOK.vocab_size), "ab", registry, strategy="greedy", max_new_tokens=3)
    assert ok.stop_reason == "length"  # inactive by default
    bad = run(TinyRNN(TOK.vocab_size), "ab", registry, strategy="greedy", options={"explode": True})
    assert bad.stop_reason == "error" and "processor 'broken' failed" in (bad.error or "")


def test_model_failure_is_an_error_event(registry: PluginRegistry) -> None:
    class Failing(TinyRNN):
        def step(self, tokens: np.ndarray, state: dict[str, np.ndarray]) -> Any:
            if tokens.shape[1] == 1 and state["h"].any():
                raise RuntimeError("device lost")
            return super().step(tokens, state)

    result = run(Failing(TOK.vocab_size), "ab", registry, strategy="greedy")
    assert result.stop_reason == "error" and "device lost" in (result.error or "")


def test_max_new_tokens_zero(registry: PluginRegistry) -> None:
    result = run(TinyRNN(TOK.vocab_size), "ab", registry, max_new_tokens=0)
    assert result.token_ids == [] and result.stop_reason == "length" and result.state is not None
