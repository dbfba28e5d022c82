"""Read and check an exported termlm model file (.onnx) without building a session.

The file is an ONNX ``ModelProto``; termlm's description of it is one JSON object under the
``metadata_props`` key ``termlm`` (docs/model-format.md). This module walks the protobuf's
top-level fields by hand (no ``onnx`` import, no weights read), then checks the JSON by hand, so
every way a file can be wrong ends in a :class:`ModelFileError` that says what to do.

Pure functions (:func:`read_metadata_props`, :func:`parse_meta`) take bytes and text, so they can
be fuzzed: any input gives a result or a ``ModelFileError``, never another exception.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from termlm.config import ARCHITECTURES, LEVELS, ModelConfig
from termlm.errors import ConfigError, ModelFileError
from termlm.modelpath import (
    REEXPORT,
    check_model_path,
    open_model_file,
)
from termlm.modelscan import scan_model
from termlm.protowire import Truncated
from termlm.protowire import fields as proto_fields

FORMAT_VERSION = 1
META_KEY = "termlm"
MAX_META_BYTES = 16 * 1024 * 1024  # a tokenizer is big, but never this big

REFUSED_HINT = (
    "termlm runs only the files `termlm export` writes; do not run this file, or re-export it"
)
MAX_STATE_ELEMENTS = 2**24  # per batch row and time step: a 64 MB state is already absurd
MAX_CONTEXT = 2**20  # tokens: a window and a prompt of this many are still megabytes

# ModelProto / GraphProto / TensorProto field numbers (onnx.proto3)
_MODEL_IR_VERSION = 1
_MODEL_GRAPH = 7
_MODEL_METADATA_PROPS = 14

_STATE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- the typed metadata


@dataclass(frozen=True)
class StateSpec:
    """One state array: its name and shape (``"batch"``/``"time"`` mark symbolic axes).

    The one description of a state, for the models in training, the export and the runtime.
    """

    name: str
    shape: tuple[int | str, ...]
    batch_axis: int
    time_axis: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """As written in a model file's metadata."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "batch_axis": self.batch_axis,
            "time_axis": self.time_axis,
        }


@dataclass(frozen=True)
class SpecialIds:
    pad: int | None = None
    unk: int | None = None
    eos: int | None = None


@dataclass(frozen=True)
class ModelMeta:
    """What a model file says about itself (docs/model-format.md, format 1)."""

    format: int
    termlm_version: str
    name: str
    config: ModelConfig
    level: str
    tokenizer: dict[str, Any]
    stateful: bool
    context: int
    state: tuple[StateSpec, ...]
    extras: tuple[str, ...]
    special: SpecialIds
    quantized: str | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def val_loss(self) -> float | None:
        return _number_or_none(self.card.get("val_loss"))

    @property
    def params(self) -> int | None:
        value = self.card.get("params")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def is_default(self) -> bool:
        return self.card.get("default") is True


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None  # JSON text may say NaN or Infinity


# --------------------------------------------------------------------------- protobuf walking


def _string_entry(buf: Any, start: int, end: int) -> tuple[str, str]:
    key = value = ""
    for number, wire, a, b in proto_fields(buf, start, end):
        if wire != 2:
            continue
        if number == 1:
            key = bytes(buf[a:b]).decode("utf-8", errors="replace")
        elif number == 2:
            if b - a > MAX_META_BYTES:
                raise ModelFileError(
                    f"its metadata entry {key!r} is {(b - a) / 2**20:.0f} MB, over the "
                    f"{MAX_META_BYTES // 2**20} MB a termlm model file may hold",
                    f"the file is damaged or not a termlm model; {REEXPORT}",
                )
            value = bytes(buf[a:b]).decode("utf-8", errors="replace")
    return key, value


@dataclass(frozen=True)
class ModelProtoSummary:
    """The top-level facts of an ONNX file that termlm needs before building a session."""

    ir_version: int
    metadata: dict[str, str]
    external_data: bool
    initializer_bytes: int
    problem: str | None = None  # why the file is refused (termlm/modelscan.py), if it is


def read_model_proto(buf: Any, *, scan_graph: bool = True) -> ModelProtoSummary:
    """Walk a serialized ONNX ModelProto (bytes, or an mmap).

    With ``scan_graph`` every message that can hold a tensor or an operator is walked
    (termlm/modelscan.py) and ``problem`` says why the file is refused, if it is.
    Raises ModelFileError when the bytes are not a (complete) ONNX model.
    """
    not_onnx = ModelFileError(
        "it is not an ONNX model file (unreadable or truncated)",
        f"check that the copy is complete; {REEXPORT}",
    )
    metadata: dict[str, str] = {}
    ir_version = 0
    has_graph = False
    try:
        for number, wire, a, b in proto_fields(buf, 0, len(buf)):
            if number == _MODEL_IR_VERSION and wire == 0:
                ir_version = a
            elif number == _MODEL_GRAPH and wire == 2:
                has_graph = True
            elif number == _MODEL_METADATA_PROPS and wire == 2:
                key, value = _string_entry(buf, a, b)
                metadata[key] = value
        scan = scan_model(buf) if scan_graph and has_graph else None
    except Truncated:
        raise not_onnx from None
    if not has_graph or ir_version <= 0:
        raise not_onnx
    if scan is None:
        return ModelProtoSummary(ir_version, metadata, False, 0)
    return ModelProtoSummary(
        ir_version, metadata, scan.external_data, scan.initializer_bytes, scan.problem
    )


def read_metadata_props(buf: Any) -> dict[str, str]:
    """The ``metadata_props`` of a serialized ONNX model, without reading its graph."""
    return read_model_proto(buf, scan_graph=False).metadata


# --------------------------------------------------------------------------- the metadata schema


def _bad(detail: str) -> ModelFileError:
    return ModelFileError(f"its termlm metadata is malformed: {detail}", REEXPORT)


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in data:
        raise _bad(f"missing key {key!r}")
    value = data[key]
    if not _is(value, kind):
        raise _bad(f"{key!r} must be {what}, got {type(value).__name__}")
    return value


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False  # bool is an int in Python, never in the schema
    return isinstance(value, kinds)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_config(raw: Mapping[str, Any]) -> ModelConfig:
    defaults = ModelConfig()
    for f in fields(ModelConfig):
        if f.name not in raw:
            continue
        value = raw[f.name]
        expected = type(getattr(defaults, f.name))
        ok = _is(value, (int, float)) if expected is float else _is(value, expected)
        if not ok:
            raise _bad(f"config.{f.name} must be {expected.__name__}, got {type(value).__name__}")
    for key in ("arch", "vocab_size"):
        if key not in raw:
            raise _bad(f"config has no {key!r}")
    config = ModelConfig.from_dict(dict(raw))
    config.dropout = float(config.dropout)
    if config.vocab_size <= 0:
        raise _bad(f"config.vocab_size must be positive, got {config.vocab_size}")
    try:
        config.validate()
    except ConfigError as exc:
        raise _bad(f"config: {exc.message}") from None
    return config


def _parse_state(raw: list[Any], stateful: bool) -> tuple[StateSpec, ...]:
    specs: list[StateSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _bad(f"state[{i}] must be an object")
        name = _require(item, "name", str, "a string")
        if not _STATE_NAME.match(name) or name in seen:
            raise _bad(f"state[{i}].name {name!r} is not a unique identifier")
        seen.add(name)
        shape = _require(item, "shape", list, "a list")
        fixed = 1
        for dim in shape:
            if not ((_is_int(dim) and dim >= 0) or dim in ("batch", "time")):
                raise _bad(f"state {name!r} has a bad dimension {dim!r}")
            fixed *= dim if _is_int(dim) else 1
        if len(shape) > 8 or fixed > MAX_STATE_ELEMENTS:
            raise _bad(
                f"state {name!r} has {len(shape)} dimensions of {fixed:,} values in all; a state "
                f"has at most 8 dimensions and {MAX_STATE_ELEMENTS:,} values per row"
            )
        batch_axis = _require(item, "batch_axis", int, "an integer")
        if not 0 <= batch_axis < len(shape) or shape[batch_axis] != "batch":
            raise _bad(f"state {name!r}: batch_axis {batch_axis} is not a 'batch' dimension")
        if "time_axis" not in item:
            raise _bad(f"state {name!r} has no 'time_axis'")
        time_axis = item["time_axis"]
        if time_axis is not None and (
            not _is_int(time_axis) or not 0 <= time_axis < len(shape) or shape[time_axis] != "time"
        ):
            raise _bad(f"state {name!r}: time_axis {time_axis!r} is not a 'time' dimension")
        specs.append(StateSpec(name, tuple(shape), batch_axis, time_axis))
    if not stateful and specs:
        raise _bad("a window model (stateful: false) cannot have state")
    return tuple(specs)


def _parse_special(raw: Mapping[str, Any], vocab_size: int) -> SpecialIds:
    ids: dict[str, int | None] = {}
    for key in ("pad", "unk", "eos"):
        value = raw.get(key)
        if value is not None and not (_is_int(value) and 0 <= value < vocab_size):
            raise _bad(
                f"special.{key} must be a token id below {vocab_size} or null, got {value!r}"
            )
        ids[key] = value
    return SpecialIds(**ids)


def parse_meta(text: str | bytes) -> ModelMeta:
    """Check the termlm metadata JSON against format 1 and type it. Pure: fuzz me."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("it is not UTF-8 text") from None
    if len(text) > MAX_META_BYTES:
        raise _bad(f"it is over {MAX_META_BYTES // 2**20} MB")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise _bad("it must be a JSON object")

    version = _require(data, "format", int, "an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"it was made by a newer termlm (format {version}); this termlm reads format "
            f"{FORMAT_VERSION}",
            "upgrade termlm: pip install -U termlm",
        )
    if version < 1:
        raise _bad(f"format must be 1 or more, got {version}")

    termlm_version = data.get("termlm_version", "")
    if not isinstance(termlm_version, str):
        raise _bad("'termlm_version' must be a string")
    name = _require(data, "name", str, "a string")
    if not name.strip():
        raise _bad("'name' is empty")
    config = _parse_config(_require(data, "config", dict, "an object"))
    level = _require(data, "level", str, "a string")
    if level not in LEVELS:
        raise _bad(f"level {level!r} is not one of {', '.join(LEVELS)}")
    tokenizer = _require(data, "tokenizer", dict, "an object")
    stateful = _require(data, "stateful", bool, "true or false")
    if stateful != config.stateful:
        raise _bad(f"'stateful' is {stateful} but the config says {config.stateful}")
    context = _require(data, "context", int, "an integer")
    if not 0 < context <= MAX_CONTEXT:
        raise _bad(f"'context' must be between 1 and {MAX_CONTEXT:,}, got {context}")
    state = _parse_state(_require(data, "state", list, "a list"), stateful)
    extras = _require(data, "extras", list, "a list")
    if not all(isinstance(x, str) and _STATE_NAME.match(x) for x in extras):
        raise _bad("'extras' must be a list of output names")
    special_raw = data.get("special") or {}
    if not isinstance(special_raw, dict):
        raise _bad("'special' must be an object")
    special = _parse_special(special_raw, config.vocab_size)
    quantized = data.get("quantized")
    if quantized not in (None, "int8"):
        raise _bad(f"'quantized' must be null or 'int8', got {quantized!r}")
    card = data.get("card") or {}
    if not isinstance(card, dict):
        raise _bad("'card' must be an object")
    assert config.arch in ARCHITECTURES  # checked by config.validate()
    return ModelMeta(
        format=version,
        termlm_version=termlm_version,
        name=name,
        config=config,
        level=level,
        tokenizer=tokenizer,
        stateful=stateful,
        context=context,
        state=state,
        extras=tuple(extras),
        special=special,
        quantized=quantized,
        card=card,
    )


def _describe(path: Path, error: ModelFileError) -> ModelFileError:
    return ModelFileError(f"cannot use {str(path)!r}: {error.message}", error.hint)


def summary_to_meta(summary: ModelProtoSummary) -> ModelMeta:
    """The typed termlm metadata of a walked file, or why it is not a termlm model."""
    if summary.problem is not None:
        raise ModelFileError(summary.problem, REFUSED_HINT)
    if META_KEY not in summary.metadata:
        raise ModelFileError(
            "it is an ONNX file, but termlm did not write it (no 'termlm' metadata)",
            "export models with `termlm export RUN_DIR`; other ONNX models cannot be run",
        )
    return parse_meta(summary.metadata[META_KEY])


def read_model_summary(path: str | Path, *, scan_graph: bool = True) -> ModelProtoSummary:
    """Walk a model file's protobuf (memory-mapped: weights are skipped, not read)."""
    path = check_model_path(path)
    fd = open_model_file(path)
    try:
        with (
            os.fdopen(fd, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf,
        ):
            return read_model_proto(buf, scan_graph=scan_graph)
    except ModelFileError as exc:
        raise _describe(path, exc) from None
    except (OSError, ValueError) as exc:  # ValueError: mmap of a file emptied meanwhile
        raise ModelFileError(f"cannot read {str(path)!r}: {exc}") from None


def read_model_meta(path: str | Path) -> ModelMeta:
    """Read and check the termlm metadata of a model file, without building a session."""
    path = check_model_path(path)
    summary = read_model_summary(path)
    try:
        return summary_to_meta(summary)
    except ModelFileError as exc:
        raise _describe(path, exc) from None
