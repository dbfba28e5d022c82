"""Crafted model files that try to reach outside themselves are refused before onnxruntime.

Each file is a working tiny termlm model with one hostile addition, built with onnx.helper.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from termlm.cli.app import main
from termlm.errors import ModelFileError
from termlm.modelfile import read_model_meta
from termlm.modelscan import MAX_GRAPH_DEPTH
from termlm.runtime.onnx_model import load_model

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from tiny_onnx import build_tiny_model  # noqa: E402

SECRET = "BEGIN OPENSSH PRIVATE KEY do-not-print"


def external_tensor(name: str = "leak", location: str = "secret.txt") -> Any:
    """A tensor whose 16 bytes live in another file (relative to the current folder)."""
    tensor = TensorProto()
    tensor.name = name
    tensor.data_type = TensorProto.UINT8
    tensor.dims.append(16)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def leak_node(tensor: Any | None = None) -> Any:
    return helper.make_node("Constant", [], ["leak"], value=tensor or external_tensor())


def nested_if(inner_nodes: list[Any], depth: int) -> Any:
    """An If node whose branches hold `inner_nodes`, `depth` levels down."""
    out = helper.make_tensor_value_info("leak", TensorProto.UINT8, [16])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    nodes = inner_nodes
    for level in range(depth):
        branch = helper.make_graph(nodes, f"branch{level}", [], [out])
        nodes = [
            helper.make_node("Constant", [], ["cond"], value=cond),
            helper.make_node(
                "If", ["cond"], ["leak"], then_branch=branch, else_branch=branch, name=f"if{level}"
            ),
        ]
    return nodes


def with_nodes(*nodes: Any) -> Any:
    model = build_tiny_model("rnn")
    model.graph.node.extend(nodes)
    return model


def constant_attribute() -> Any:
    return with_nodes(leak_node())


def constant_tensors_attribute() -> Any:
    node = helper.make_node("Constant", [], ["leak"])
    attr = node.attribute.add()
    attr.name, attr.type = "value_tensors", onnx.AttributeProto.TENSORS
    attr.tensors.append(external_tensor())
    return with_nodes(node)


def if_subgraph() -> Any:
    return with_nodes(*nested_if([leak_node()], 1))


def loop_subgraph_three_deep() -> Any:
    return with_nodes(*nested_if([leak_node()], 3))


def sparse_initializer() -> Any:
    model = build_tiny_model("rnn")
    indices = helper.make_tensor("idx", TensorProto.INT64, [1], [0])
    sparse = helper.make_sparse_tensor(external_tensor("sparse_values"), indices, [16])
    model.graph.sparse_initializer.append(sparse)
    return model


def sparse_attribute() -> Any:
    indices = helper.make_tensor("idx", TensorProto.INT64, [1], [0])
    sparse = helper.make_sparse_tensor(external_tensor("sparse_values"), indices, [16])
    node = helper.make_node("Constant", [], ["leak"], sparse_value=sparse)
    return with_nodes(node)


def initializer() -> Any:
    model = build_tiny_model("rnn")
    model.graph.initializer.append(external_tensor("extra_weight"))
    return model


def training_info() -> Any:
    model = build_tiny_model("rnn")
    info = model.training_info.add()
    info.initialization.CopyFrom(helper.make_graph([leak_node()], "init", [], []))
    return model


def custom_domain() -> Any:
    model = with_nodes(helper.make_node("Exfiltrate", ["tokens"], ["stolen"], domain="evil.ops"))
    model.opset_import.append(helper.make_opsetid("evil.ops", 1))
    return model


def custom_domain_without_opset() -> Any:
    return with_nodes(helper.make_node("Exfiltrate", ["tokens"], ["stolen"], domain="evil.ops"))


def ms_operator_not_written_by_termlm() -> Any:
    model = with_nodes(
        helper.make_node("Attention", ["tokens"], ["stolen"], domain="com.microsoft")
    )
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def ml_opset() -> Any:
    model = build_tiny_model("rnn")
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    return model


def local_function() -> Any:
    model = build_tiny_model("rnn")
    function = helper.make_function(
        "local.fn", "Leak", [], ["leak"], [leak_node()], [helper.make_opsetid("", 17)]
    )
    model.functions.append(function)
    return model


def too_deep() -> Any:
    plain = helper.make_node(
        "Constant", [], ["leak"], value=helper.make_tensor("v", TensorProto.UINT8, [16], [0] * 16)
    )
    return with_nodes(*nested_if([plain], MAX_GRAPH_DEPTH + 1))


CRAFTED: list[tuple[str, Callable[[], Any], str]] = [
    ("constant-attribute", constant_attribute, "external data"),
    ("constant-tensors-attribute", constant_tensors_attribute, "external data"),
    ("if-subgraph", if_subgraph, "external data"),
    ("subgraph-three-deep", loop_subgraph_three_deep, "external data"),
    ("sparse-initializer", sparse_initializer, "external data"),
    ("sparse-attribute", sparse_attribute, "external data"),
    ("initializer", initializer, "external data"),
    ("training-info", training_info, "training information"),
    ("custom-domain", custom_domain, "'evil.ops'"),
    ("custom-domain-no-opset", custom_domain_without_opset, "'evil.ops'"),
    ("ms-operator", ms_operator_not_written_by_termlm, "'Attention'"),
    ("ml-opset", ml_opset, "'ai.onnx.ml'"),
    ("local-function", local_function, "functions"),
    ("too-deep", too_deep, "nested more than"),
]


def write(model: Any, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def in_secret_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder holds a 'private key' that a crafted model points at."""
    (tmp_path / "secret.txt").write_text(SECRET)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("make", "needle"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_files_are_refused_by_every_reader(
    in_secret_folder: Path, make: Callable[[], Any], needle: str
) -> None:
    path = write(make(), in_secret_folder / "model.onnx")
    for read in (read_model_meta, load_model):
        with pytest.raises(ModelFileError) as info:
            read(path)
        message = str(info.value)
        assert needle in message, message
        assert SECRET not in message
        assert "export" in message  # the hint says what to do


@pytest.mark.parametrize("make", [constant_attribute, if_subgraph, sparse_attribute])
def test_generate_never_prints_the_secret(
    in_secret_folder: Path, capsys: pytest.CaptureFixture[str], make: Callable[[], Any]
) -> None:
    path = write(make(), in_secret_folder / "model.onnx")
    with pytest.raises(SystemExit) as info:
        main(["generate", str(path), "-p", "a", "-n", "8", "--json"])
    out, err = capsys.readouterr()
    assert info.value.code == 1
    assert out == ""
    assert "external data" in err and "Traceback" not in err
    assert "do-not-print" not in out + err


def test_the_external_tensor_is_real(in_secret_folder: Path) -> None:
    """The crafted tensor does point at the file: onnx itself resolves it (the threat is real)."""
    from onnx.external_data_helper import load_external_data_for_model

    model = constant_attribute()
    load_external_data_for_model(model, str(in_secret_folder))
    value = model.graph.node[-1].attribute[0].t
    assert value.raw_data == SECRET.encode()[:16]


def test_names_from_the_file_are_shown_escaped(in_secret_folder: Path) -> None:
    tensor = external_tensor(name="\x1b]0;owned\x07\x1b[2J")
    path = write(with_nodes(leak_node(tensor)), in_secret_folder / "model.onnx")
    with pytest.raises(ModelFileError) as info:
        read_model_meta(path)
    assert "\x1b" not in str(info.value) and "\x07" not in str(info.value)
    assert "\\x1b" in str(info.value)


def test_termlm_exports_pass(tmp_path: Path) -> None:
    """What termlm writes is never refused: the tiny models and the bundled ones."""
    for kind in ("rnn", "memory", "window"):
        read_model_meta(write(build_tiny_model(kind), tmp_path / f"{kind}.onnx"))
    root = Path(__file__).resolve().parents[1] / "exported"
    for bundled in sorted(root.glob("*.onnx")):
        read_model_meta(bundled)


def test_an_int8_export_passes(tmp_path: Path) -> None:
    """onnxruntime's quantizer writes com.microsoft's DynamicQuantizeLSTM: allowed."""
    pytest.importorskip("onnxruntime.quantization")
    from termlm.export.quantize import quantize_int8

    root = Path(__file__).resolve().parents[1] / "exported"
    source = root / "shakespeare-char.onnx"
    if not source.exists():
        pytest.skip("no bundled model")
    data = quantize_int8(source.read_bytes())
    assert b"com.microsoft" in data
    path = tmp_path / "int8.onnx"
    path.write_bytes(data)
    assert read_model_meta(path).name
    model = load_model(path)
    out = model.step(np.array([[2, 3]]), model.initial_state(1))
    assert out.logits.shape == (1, 2, model.vocab_size)


def test_names_that_are_not_utf8_are_refused_quietly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """onnxruntime loads such a graph but cannot describe it; it must not print on stdout."""
    model = build_tiny_model("rnn")
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "bAtcZ"
    data = model.SerializeToString().replace(b"bAtcZ", b"batc\x97")
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelFileError):
        load_model(path)
    out, _ = capsys.readouterr()
    assert "EP Error" not in out and out == ""
