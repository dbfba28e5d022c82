"""The generation loop gives exactly the recorded tokens for every built-in strategy and processor.

The outputs in ``tests/data/decoding_golden.json`` were recorded with the loop that rescanned the
whole history at every step; the incremental loop must agree with it token for token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from decoding_golden import GOLDEN, Model, case_id, cases, run_case

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
    assert got == expected
