"""The decoding strategies on real onnxruntime models (tiny graphs made in the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnx")

from tiny_onnx import CONTEXT, write_tiny_model

from termlm.decoding import PluginRegistry, build_plugin_manager, generate
from termlm.decoding.events import DoneEvent, GenerationResult
from termlm.runtime.onnx_model import OnnxLanguageModel, load_model

KINDS = ("rnn", "memory", "window")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OnnxLanguageModel]:
    from termlm.tokenizers import fit_tokenizer

    tokenizer = fit_tokenizer("char", "the cat sat on the mat, and then it sat on the hat.")
    folder: Path = tmp_path_factory.mktemp("decoding-models")
    return {
        kind: load_model(
            write_tiny_model(
                folder / f"{kind}.onnx",
                kind,
                vocab=tokenizer.vocab_size,
                tokenizer=tokenizer.to_json(),
            )
        )
        for kind in KINDS
    }


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return build_plugin_manager(entry_points=False, user_dir=False)


def run(
    model: OnnxLanguageModel, registry: PluginRegistry, prompt: Any, **kw: Any
) -> GenerationResult:
    events = list(generate(model, model.tokenizer, prompt, registry=registry, **kw))
    assert isinstance(events[-1], DoneEvent)
    result = events[-1].result
    assert result.error is None, result.error
    return result


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam", "lookahead"])
def test_every_strategy_runs_past_the_context(
    models: dict[str, OnnxLanguageModel], registry: PluginRegistry, kind: str, strategy: str
) -> None:
    model = models[kind]
    result = run(
        model, registry, "the c", strategy=strategy, max_new_tokens=2 * CONTEXT + 3, seed=1
    )
    assert result.stop_reason in ("length", "eos")
    assert all(0 <= i < model.vocab_size for i in result.token_ids)


@pytest.mark.parametrize("kind", KINDS)
def test_one_beam_is_greedy_and_state_continues(
    models: dict[str, OnnxLanguageModel], registry: PluginRegistry, kind: str
) -> None:
    model = models[kind]
    greedy = run(model, registry, "th", strategy="greedy", max_new_tokens=20)
    beam = run(model, registry, "th", strategy="beam", options={"num_beams": 1}, max_new_tokens=20)
    assert beam.token_ids == greedy.token_ids
    if greedy.stop_reason == "length":
        first = run(model, registry, "th", strategy="greedy", max_new_tokens=7)
        rest = run(model, registry, "", strategy="greedy", max_new_tokens=13, state=first.state)
        assert first.token_ids + rest.token_ids == greedy.token_ids
