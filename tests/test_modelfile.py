"""Model files: every way a file can be wrong ends in a ModelFileError that says what to do."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from termlm.errors import ModelFileError
from termlm.modelfile import (
    ModelMeta,
    parse_meta,
    read_metadata_props,
    read_model_meta,
    read_model_proto,
)

onnx = pytest.importorskip("onnx")

from tiny_onnx import build_tiny_model, tiny_meta, write_tiny_model  # noqa: E402


def refusal(path: Path) -> str:
    with pytest.raises(ModelFileError) as info:
        read_model_meta(path)
    return str(info.value)


def test_reads_a_good_file(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.onnx", "memory")
    meta = read_model_meta(path)
    assert isinstance(meta, ModelMeta)
    assert meta.name == "tiny-memory"
    assert meta.arch == "attention"
    assert meta.stateful is True
    assert meta.state[0].name == "mem" and meta.state[0].time_axis == 1
    assert meta.special.pad == 0 and meta.special.eos is None
    assert meta.val_loss == 2.5
    assert meta.params == 3 * 12 * 8


def test_missing_path(tmp_path: Path) -> None:
    assert "does not exist" in refusal(tmp_path / "nope.onnx")


def test_directory(tmp_path: Path) -> None:
    assert "is a folder" in refusal(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert "empty" in refusal(path)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.onnx"
    path.write_bytes(os.urandom(4096))
    message = refusal(path)
    assert "not an ONNX model file" in message or "termlm did not write it" in message


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("hello, this is not a model\n" * 10)
    assert "not an ONNX model file" in refusal(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path: Path, fraction: float) -> None:
    data = build_tiny_model("rnn").SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    assert "not an ONNX model file" in refusal(path)


def test_onnx_not_from_termlm(tmp_path: Path) -> None:
    model = build_tiny_model("rnn")
    del model.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    path.write_bytes(model.SerializeToString())
    message = refusal(path)
    assert "termlm did not write it" in message
    assert "termlm export" in message


def test_bad_json(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.onnx", meta_text="{not json")
    assert "malformed" in refusal(path)


@pytest.mark.parametrize(
    "change",
    [
        {"context": "long"},
        {"stateful": 1},
        {"state": {"h": 1}},
        {"config": {"arch": "lstm", "vocab_size": -3}},
        {"config": {"arch": "mamba", "vocab_size": 12}},
        {"config": {"arch": "lstm", "vocab_size": 12, "hidden": "big"}},
        {"level": "byte"},
        {"special": {"pad": 99}},
        {"quantized": "fp4"},
        {"extras": [3]},
    ],
)
def test_wrong_types(tmp_path: Path, change: dict[str, Any]) -> None:
    path = write_tiny_model(tmp_path / "m.onnx", meta=tiny_meta("rnn", **change))
    message = refusal(path)
    assert "malformed" in message and "termlm export" in message


@pytest.mark.parametrize("key", ["format", "name", "config", "tokenizer", "state", "context"])
def test_missing_keys(tmp_path: Path, key: str) -> None:
    meta = tiny_meta("rnn")
    del meta[key]
    path = write_tiny_model(tmp_path / "m.onnx", meta=meta)
    assert f"missing key {key!r}" in refusal(path)


def test_newer_format(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.onnx", meta_text=json.dumps({"format": 2, "x": []}))
    message = refusal(path)
    assert "newer termlm (format 2)" in message
    assert "upgrade termlm" in message


def test_oversized_metadata(tmp_path: Path) -> None:
    meta = tiny_meta("rnn", card={"sample": "x" * (17 * 1024 * 1024)})
    path = write_tiny_model(tmp_path / "m.onnx", meta=meta)
    assert "MB" in refusal(path)


def test_external_data(tmp_path: Path) -> None:
    model = build_tiny_model("rnn")
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    assert (tmp_path / "ext.onnx.data").exists()
    message = refusal(path)
    assert "external data" in message and "self-contained" in message


def test_metadata_reader_skips_the_graph() -> None:
    data = build_tiny_model("memory").SerializeToString()
    props = read_metadata_props(data)
    assert set(props) == {"termlm"}
    summary = read_model_proto(data)
    assert summary.initializer_bytes >= 2 * 12 * 8 * 4  # two float32 matrices
    assert not summary.external_data


# --------------------------------------------------------------------------- fuzzing


def assert_meta_or_refusal(parse: Callable[[Any], ModelMeta], value: Any) -> None:
    """Any input gives typed metadata or a ModelFileError with a message, never a crash."""
    try:
        result = parse(value)
    except ModelFileError as exc:
        assert exc.message
        return
    assert isinstance(result, ModelMeta)
    assert result.vocab_size > 0 and result.context > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_parse_meta_fuzz_raw(text: str | bytes) -> None:
    assert_meta_or_refusal(parse_meta, text)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(tiny_meta("rnn"))),
    json_values,
    st.sampled_from(["rnn", "memory", "window"]),
)
def test_parse_meta_fuzz_fields(key: str, value: Any, kind: str) -> None:
    meta = tiny_meta(kind)
    meta[key] = value
    assert_meta_or_refusal(parse_meta, json.dumps(meta))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*tiny_meta("rnn")["config"], "tie", "dropout"]), json_values)
)
def test_parse_meta_fuzz_config(config: dict[str, Any]) -> None:
    assert_meta_or_refusal(parse_meta, json.dumps(tiny_meta("rnn", config=config)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_protobuf_walker_fuzz(data: bytes) -> None:
    try:
        summary = read_model_proto(data)
    except ModelFileError as exc:
        assert exc.message and exc.hint
        return
    assert summary.ir_version > 0


_GOOD = build_tiny_model("rnn").SerializeToString()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_GOOD) - 1), st.integers(0, 255), st.integers(1, len(_GOOD)))
def test_protobuf_walker_fuzz_mutations(position: int, byte: int, cut: int) -> None:
    data = bytearray(_GOOD[:cut])
    if position < len(data):
        data[position] = byte
    try:
        summary = read_model_proto(bytes(data))
    except ModelFileError:
        return
    assert summary.ir_version > 0
