"""The generation loop gives exactly the recorded tokens for every built-in strategy and processor.

The outputs in ``tests/data/decoding_golden.json`` were recorded with the loop that rescanned the
whole history at every step; the incremental loop must agree with it token for token, and on its
numbers (log-probabilities, scores, the final state) to within floating-point noise: builds of
onnxruntime and numpy, and CPUs, round in the last bits differently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from decoding_golden import GOLDEN, NUMBERS, STRATEGIES, Model, case_id, cases, run_case

from termlm.decoding import PluginRegistry, build_plugin_manager

RECORDED: dict[str, Any] = json.loads(GOLDEN.read_text())
CASES = list(cases())


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return build_plugin_manager(entry_points=False, user_dir=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("golden-models")


def test_the_grid_is_the_recorded_one() -> None:
    assert sorted(case_id(*c) for c in CASES) == sorted(RECORDED)


@pytest.mark.parametrize("case", CASES, ids=[case_id(*c) for c in CASES])
def test_same_outputs_as_recorded(
    case: tuple[Model, str, str, int], registry: PluginRegistry, folder: Path
) -> None:
    if case[0].needs_onnx:
        pytest.importorskip("onnx")
    got = run_case(*case, folder=str(folder), registry=registry)
    expected = RECORDED[case_id(*case)]
    assert got["tokens"] == expected["tokens"]
    assert {k: v for k, v in got.items() if k not in NUMBERS} == {
        k: v for k, v in expected.items() if k not in NUMBERS
    }
    for key in NUMBERS:
        assert close(got[key], expected[key]), f"{key}: {got[key]} != {expected[key]}"


def close(got: Any, expected: Any) -> bool:
    """The same structure, counts and Nones equal, floats within 1e-4 (relative) or 1e-3."""
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(close(got[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(got) == len(expected)
            and all(close(g, e) for g, e in zip(got, expected, strict=True))
        )
    if isinstance(expected, float) and isinstance(got, (int, float)):
        return bool(got == pytest.approx(expected, rel=1e-4, abs=1e-3))
    return type(got) is type(expected) and got == expected


LEAN = [c for c in CASES if STRATEGIES[c[1]][0] in ("sample", "greedy")]


@pytest.mark.parametrize("case", LEAN, ids=[case_id(*c) for c in LEAN])
def test_the_same_tokens_when_no_alternatives_are_wanted(
    case: tuple[Model, str, str, int], registry: PluginRegistry, folder: Path
) -> None:
    """``termlm generate`` wants no alternatives: greedy and the sampler then read the logits
    themselves where no processor is at work (``DecodeContext.logit_bans``), and give the same
    tokens."""
    if case[0].needs_onnx:
        pytest.importorskip("onnx")
    got = run_case(*case, folder=str(folder), registry=registry, alternatives=0)
    expected = RECORDED[case_id(*case)]
    assert got["tokens"] == expected["tokens"]
    assert got["text"] == expected["text"] and got["stop_reason"] == expected["stop_reason"]
    assert close(got["logprobs"], expected["logprobs"])


def test_close_tells_noise_from_a_difference() -> None:
    assert close({"a": [3, 1.0, None]}, {"a": [3, 1.00001, None]})
    assert not close({"a": [3, 1.0, None]}, {"a": [4, 1.0, None]})
    assert not close({"a": [3, 1.0, None]}, {"a": [3, 1.01, None]})
    assert not close({"a": [3, 1.0]}, {"a": [3, 1.0, None]})
    assert not close([0.0], [None])
