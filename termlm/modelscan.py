"""Check everything inside a model file's graph before onnxruntime sees the bytes.

A termlm export is one self-contained graph of standard operators (plus onnxruntime's own
quantized LSTM in int8 files). Anything else in a file can reach outside it or run code termlm
never wrote, so it is refused:

* a tensor anywhere (an initializer, a node attribute such as a ``Constant``'s value, a sparse
  tensor, a subgraph of ``If``/``Loop``/``Scan`` at any depth) whose data lives in another file
  (``data_location = EXTERNAL`` or ``external_data`` entries): onnxruntime would read that file,
  relative to the current folder;
* an operator from another domain (custom operators come from native libraries) or an operator
  set other than the standard one and ``com.microsoft`` (only its quantized LSTM);
* model-local functions and training information (a termlm export writes neither);
* graphs nested deeper than a bound, and more protobuf fields than a bound (every reader is bounded).

The walk reads field headers only: weights are stepped over, never copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from termlm.protowire import Truncated, fields

# Domains of operators and operator sets a termlm export writes ("" and "ai.onnx" are the standard).
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
MS_DOMAIN = "com.microsoft"
MS_OPERATORS = frozenset({"DynamicQuantizeLSTM"})  # int8 export: onnxruntime's quantizer
MAX_GRAPH_DEPTH = 8  # a termlm export has no subgraphs at all
MAX_FIELDS = 2_000_000  # the bundled word model has about two thousand

# Field numbers (onnx.proto3).
_MODEL_GRAPH = 7
_MODEL_OPSET_IMPORT = 8
_MODEL_TRAINING_INFO = 20
_MODEL_FUNCTIONS = 25
_GRAPH_NODE = 1
_GRAPH_NAME = 2
_GRAPH_INITIALIZER = 5
_GRAPH_SPARSE_INITIALIZER = 15
_NODE_NAME = 3
_NODE_OP_TYPE = 4
_NODE_ATTRIBUTE = 5
_NODE_DOMAIN = 7
_ATTR_NAME = 1
_ATTR_T = 5
_ATTR_G = 6
_ATTR_TENSORS = 10
_ATTR_GRAPHS = 11
_ATTR_SPARSE_TENSOR = 22
_ATTR_SPARSE_TENSORS = 23
_SPARSE_VALUES = 1
_SPARSE_INDICES = 2
_TENSOR_NAME = 8
_TENSOR_EXTERNAL_DATA = 13
_TENSOR_DATA_LOCATION = 14
_DATA_LOCATION_EXTERNAL = 1
_OPSET_DOMAIN = 1


class Refused(Exception):
    """The file holds something a termlm export never writes; the message says what."""

    def __init__(self, reason: str, *, external: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.external = external


@dataclass(frozen=True)
class ScanResult:
    """What the walk found: why the file is refused (None if it is not), and its weight bytes."""

    problem: str | None
    external_data: bool
    initializer_bytes: int


def _text(buf: Any, start: int, stop: int, limit: int = 200) -> str:
    return bytes(buf[start : min(stop, start + limit)]).decode("utf-8", errors="replace")


class _Walker:
    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.budget = MAX_FIELDS

    def fields(self, start: int, end: int) -> Any:
        for item in fields(self.buf, start, end):
            self.budget -= 1
            if self.budget < 0:
                raise Refused(
                    f"it holds more than {MAX_FIELDS:,} protobuf fields; a termlm export holds "
                    "a few thousand"
                )
            yield item

    # --- messages ---------------------------------------------------------------------------

    def tensor(self, start: int, end: int, where: str) -> None:
        name = ""
        external = False
        for number, wire, a, b in self.fields(start, end):
            if number == _TENSOR_NAME and wire == 2:
                name = _text(self.buf, a, b)
            elif (number == _TENSOR_EXTERNAL_DATA and wire == 2) or (
                number == _TENSOR_DATA_LOCATION and wire == 0 and a == _DATA_LOCATION_EXTERNAL
            ):
                external = True
        if external:
            label = f"tensor {name!r}" if name else "a tensor"
            raise Refused(
                f"{label} ({where}) references external data; termlm model files are "
                "self-contained and never read other files",
                external=True,
            )

    def sparse(self, start: int, end: int, where: str) -> None:
        for number, wire, a, b in self.fields(start, end):
            if number in (_SPARSE_VALUES, _SPARSE_INDICES) and wire == 2:
                self.tensor(a, b, f"a sparse tensor, {where}")

    def graph(self, start: int, end: int, depth: int, where: str) -> int:
        """Walk a graph; returns its initializers' payload bytes."""
        if depth > MAX_GRAPH_DEPTH:
            raise Refused(f"its graphs are nested more than {MAX_GRAPH_DEPTH} deep")
        weights = 0
        for number, wire, a, b in self.fields(start, end):
            if wire != 2:
                continue
            if number == _GRAPH_NODE:
                self.node(a, b, depth, where)
            elif number == _GRAPH_INITIALIZER:
                self.tensor(a, b, f"an initializer of {where}")
                weights += self.payload(a, b)
            elif number == _GRAPH_SPARSE_INITIALIZER:
                self.sparse(a, b, f"an initializer of {where}")
        return weights

    def payload(self, start: int, end: int) -> int:
        return sum(b - a for _, wire, a, b in fields(self.buf, start, end) if wire == 2)

    def node(self, start: int, end: int, depth: int, where: str) -> None:
        name = op_type = domain = ""
        attributes: list[tuple[int, int]] = []
        for number, wire, a, b in self.fields(start, end):
            if wire != 2:
                continue
            if number == _NODE_NAME:
                name = _text(self.buf, a, b)
            elif number == _NODE_OP_TYPE:
                op_type = _text(self.buf, a, b)
            elif number == _NODE_DOMAIN:
                domain = _text(self.buf, a, b)
            elif number == _NODE_ATTRIBUTE:
                attributes.append((a, b))
        label = f"{op_type or 'an operator'} node {name!r}" if name else op_type or "a node"
        check_operator(domain, op_type)
        for a, b in attributes:
            self.attribute(a, b, depth, f"in {label} of {where}")

    def attribute(self, start: int, end: int, depth: int, where: str) -> None:
        name = ""
        for number, wire, a, b in self.fields(start, end):
            if number == _ATTR_NAME and wire == 2:
                name = _text(self.buf, a, b)
        here = f"attribute {name!r} {where}" if name else f"an attribute {where}"
        for number, wire, a, b in self.fields(start, end):
            if wire != 2:
                continue
            if number in (_ATTR_T, _ATTR_TENSORS):
                self.tensor(a, b, here)
            elif number in (_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS):
                self.sparse(a, b, here)
            elif number in (_ATTR_G, _ATTR_GRAPHS):
                self.graph(a, b, depth + 1, f"the subgraph of {here}")


def check_operator(domain: str, op_type: str) -> None:
    """Refuse an operator a termlm export never writes (a custom or unexpected domain)."""
    if domain in STANDARD_DOMAINS:
        return
    if domain == MS_DOMAIN and op_type in MS_OPERATORS:
        return
    shown = ascii(domain) if domain else "''"
    raise Refused(
        f"it uses the operator {op_type!a} of domain {shown}; a termlm export uses only "
        "standard ONNX operators (and onnxruntime's DynamicQuantizeLSTM)"
    )


def _opset(walker: _Walker, start: int, end: int) -> None:
    for number, wire, a, b in walker.fields(start, end):
        if number == _OPSET_DOMAIN and wire == 2:
            domain = _text(walker.buf, a, b)
            if domain not in STANDARD_DOMAINS and domain != MS_DOMAIN:
                raise Refused(
                    f"it imports the operator set {domain!a}; a termlm export imports only "
                    f"the standard one and {MS_DOMAIN!r}"
                )


def scan_model(buf: Any, start: int = 0, end: int | None = None) -> ScanResult:
    """Walk a whole serialized ModelProto (bytes or an mmap). Raises ``Truncated`` on bad bytes."""
    stop = len(buf) if end is None else end
    walker = _Walker(buf)
    weights = 0
    try:
        for number, wire, a, b in walker.fields(start, stop):
            if wire != 2:
                continue
            if number == _MODEL_GRAPH:
                weights += walker.graph(a, b, 0, "the main graph")
            elif number == _MODEL_OPSET_IMPORT:
                _opset(walker, a, b)
            elif number == _MODEL_FUNCTIONS:
                raise Refused(
                    "it defines its own functions (model-local functions); a termlm export "
                    "never does"
                )
            elif number == _MODEL_TRAINING_INFO:
                raise Refused("it carries training information; a termlm export never does")
    except Refused as exc:
        return ScanResult(exc.reason, exc.external, weights)
    return ScanResult(None, False, weights)


__all__ = ["MAX_FIELDS", "MAX_GRAPH_DEPTH", "Refused", "ScanResult", "Truncated", "scan_model"]
