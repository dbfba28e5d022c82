"""A grid of generations (model x strategy x processors x seed) and what each one produced.

``tests/data/decoding_golden.json`` holds the outputs recorded before the generation loop was
made incremental; ``test_decoding_golden.py`` checks that the loop still produces exactly the
same tokens and texts, and the same numbers to within floating-point noise.
Re-record (only when a change of output is intended) with ``python tests/decoding_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from termlm.decoding import PluginRegistry, build_plugin_manager, generate
from termlm.decoding.events import BeamsEvent, DoneEvent, TokenEvent
from termlm.decoding.testing import MemoryModel, TinyRNN, WindowModel, char_tokenizer

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "data" / "decoding_golden.json"
# Fields of numbers: the same to within floating-point noise (onnxruntime and numpy builds and
# CPUs round exp, log and matrix products differently in the last bits); the tokens and texts
# must match exactly.
NUMBERS = ("logprobs", "n_best_scores", "beam_scores", "state")
TEXT = "the cat sat on the mat, and then it sat on the hat."

STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "greedy": ("greedy", {}),
    "sample": ("sample", {}),
    "sample-wild": ("sample", {"temperature": 1.3, "top_k": 8, "min_p": 0.02, "top_p": 1.0}),
    "sample-typical": ("sample", {"typical_p": 0.7}),
    "beam": ("beam", {"num_beams": 4}),
    "beam-nbest": (
        "beam",
        {"num_beams": 3, "num_return_sequences": 2, "length_penalty": 0.5},
    ),
    "beam-early": ("beam", {"num_beams": 2, "early_stopping": True}),
    "lookahead": ("lookahead", {}),
}
PROCESSORS: dict[str, dict[str, Any]] = {
    "none": {},
    "repetition": {"repetition_penalty": 1.4},
    "freq-presence": {"frequency_penalty": 0.6, "presence_penalty": 0.4},
    "ngram2": {"no_repeat_ngram_size": 2},
    "ngram3": {"no_repeat_ngram_size": 3},
    "banned": {"banned_words": "e,t"},
    "min-length": {"min_new_tokens": 12},
    "all": {
        "repetition_penalty": 0.8,
        "frequency_penalty": -0.3,
        "presence_penalty": 0.5,
        "no_repeat_ngram_size": 4,
        "banned_words": "a",
        "min_new_tokens": 5,
    },
}
STOCHASTIC = {"sample", "sample-wild", "sample-typical", "lookahead"}


@dataclass(frozen=True)
class Model:
    name: str
    tokens: int  # max_new_tokens
    prompt: str
    needs_onnx: bool = False
    stop: tuple[str, ...] = ()
    strategies: tuple[str, ...] = tuple(STRATEGIES)
    processors: tuple[str, ...] = tuple(PROCESSORS)
    seeds: tuple[int, ...] = (1, 2)
    extra: dict[str, Any] = field(default_factory=dict)


MODELS: tuple[Model, ...] = (
    # numpy toys: an eos token (stops, min-length), a memory re-read past the context, a window
    Model("toy-rnn-eos", 40, "the c"),
    Model("toy-memory", 40, "sat on", stop=("he ",)),
    Model("toy-window", 30, "the mat"),
    # tiny onnxruntime graphs (need onnx to build)
    Model("tiny-rnn", 40, "the cat", needs_onnx=True),
    Model("tiny-memory", 40, "on the", needs_onnx=True, seeds=(3,)),
    Model("tiny-window", 24, "hat", needs_onnx=True, seeds=(3,)),
    # the bundled models
    Model("shakespeare-char", 48, "ROMEO:\nWhat", stop=("\n\n",)),
    Model(
        "shakespeare-word",
        16,
        "KING HENRY:\nWhat say you",
        strategies=("greedy", "sample", "beam", "lookahead"),
        processors=("none", "repetition", "ngram2", "all"),
        seeds=(1,),
    ),
    Model(
        "shakespeare-dialogue",
        24,
        "ROMEO:\nWhat news?\n\nJULIET:\n",
        stop=("\n\n",),
        strategies=("greedy", "sample", "beam", "lookahead"),
        processors=("none", "repetition", "ngram2", "all"),
        seeds=(1,),
    ),
    Model(
        "shakespeare-attention",
        40,
        "JULIET:\nO",
        strategies=("greedy", "sample", "beam", "lookahead"),
        processors=("none", "freq-presence", "ngram3", "all"),
        seeds=(1,),
    ),
)


def cases() -> Iterator[tuple[Model, str, str, int]]:
    for model in MODELS:
        for strategy in model.strategies:
            for procs in model.processors:
                seeds = model.seeds if strategy in STOCHASTIC else model.seeds[:1]
                for seed in seeds:
                    yield model, strategy, procs, seed


def case_id(model: Model, strategy: str, procs: str, seed: int) -> str:
    return f"{model.name}/{strategy}/{procs}/s{seed}"


@cache
def load(name: str, folder: str) -> tuple[Any, Any]:
    """(model, tokenizer) by name; tiny onnx files are written under ``folder``."""
    tok = char_tokenizer("abcdefghijklmnopqrstuvwxyz ,.", eos=True)
    if name == "toy-rnn-eos":
        return TinyRNN(tok.vocab_size, hidden=12, seed=4, context=64, sharpness=2.0), tok
    if name == "toy-memory":
        return MemoryModel(tok.vocab_size, hidden=12, seed=5, context=12), tok
    if name == "toy-window":
        return WindowModel(tok.vocab_size, context=6, seed=6), tok
    from termlm.runtime.onnx_model import load_model

    if name.startswith("tiny-"):
        from tiny_onnx import write_tiny_model

        from termlm.tokenizers import fit_tokenizer

        chars = fit_tokenizer("char", TEXT)
        kind = name.removeprefix("tiny-")
        path = write_tiny_model(
            Path(folder) / f"{kind}.onnx",
            kind,
            vocab=chars.vocab_size,
            tokenizer=chars.to_json(),
        )
        model = load_model(path, threads=1)
        return model, model.tokenizer
    model = load_model(ROOT / "exported" / f"{name}.onnx", threads=1)
    return model, model.tokenizer


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def run_case(
    model: Model,
    strategy: str,
    procs: str,
    seed: int,
    folder: str,
    registry: PluginRegistry,
    alternatives: int = 5,
) -> dict[str, Any]:
    lm, tokenizer = load(model.name, folder)
    name, options = STRATEGIES[strategy]
    events = list(
        generate(
            lm,
            tokenizer,
            model.prompt,
            registry=registry,
            strategy=name,
            options={**options, **PROCESSORS[procs]},
            max_new_tokens=model.tokens,
            stop=model.stop,
            seed=seed,
            alternatives=alternatives,
        )
    )
    done = events[-1]
    assert isinstance(done, DoneEvent)
    result = done.result
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    beams = [
        [[list(b.token_ids), b.text, b.finished] for b in e.beams]
        for e in events
        if isinstance(e, BeamsEvent)
    ]
    scores = [b.score for e in events if isinstance(e, BeamsEvent) for b in e.beams]
    return {
        "tokens": result.token_ids,
        "text": result.text,
        "stop_reason": result.stop_reason,
        "error": result.error,
        "pieces": _digest([e.text for e in tokens]),
        "alternatives": _digest([[a.token_id for a in e.alternatives] for e in tokens]),
        "n_best": [[list(b.token_ids), b.text] for b in result.n_best],
        "beams": [len(beams), _digest(beams)],
        # numbers: compared within a tolerance (``NUMBERS``), not to the last bit
        "logprobs": _summary(result.logprobs),
        "n_best_scores": [_round(b.score) for b in result.n_best],
        "beam_scores": _summary(scores),
        "state": (
            {k: _summary(v.ravel().tolist()) for k, v in sorted(result.state.items())}
            if result.state is not None
            else None
        ),
    }


def _round(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def _summary(values: Sequence[float]) -> list[Any]:
    """[count, sum, sum of squares, min, max] of the finite values, and the count of others."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return [0, len(values)]
    return [
        len(finite),
        _round(math.fsum(finite)),
        _round(math.fsum(v * v for v in finite)),
        _round(min(finite)),
        _round(max(finite)),
        len(values) - len(finite),
    ]


def record(folder: str) -> dict[str, Any]:
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    return {case_id(*case): run_case(*case, folder=folder, registry=registry) for case in cases()}


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with tempfile.TemporaryDirectory() as tmp:
        outputs = record(tmp)
    GOLDEN.parent.mkdir(exist_ok=True)
    lines = [
        f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(outputs.items())
    ]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"{len(outputs)} cases written to {GOLDEN.relative_to(ROOT)}")
