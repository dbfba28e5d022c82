"""Tiny termlm-format ONNX files built with onnx.helper, for runtime tests without torch.

Three shapes of model, all real graphs with random weights:
* ``rnn``: embedding -> ONNX RNN (state ``h`` [1, batch, hidden]) -> output projection.
* ``memory``: a growing memory ``mem`` [batch, time, hidden] (like the attention model's): each
  token's logits depend on the mean of everything remembered so far.
* ``window``: a stateless window model: the mean of the window's embeddings -> logits [B, 1, V].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

VOCAB = 12
HIDDEN = 8
CONTEXT = 16


def _meta(
    kind: str, vocab: int, tokenizer: dict[str, Any] | None, **overrides: Any
) -> dict[str, Any]:
    arch = {"rnn": "rnn", "memory": "attention", "window": "gru"}[kind]
    state: list[dict[str, Any]] = []
    if kind == "rnn":
        state = [{"name": "h", "shape": [1, "batch", HIDDEN], "batch_axis": 1, "time_axis": None}]
    elif kind == "memory":
        state = [
            {"name": "mem", "shape": ["batch", "time", HIDDEN], "batch_axis": 0, "time_axis": 1}
        ]
    meta: dict[str, Any] = {
        "format": 1,
        "termlm_version": "0.1.0",
        "name": f"tiny-{kind}",
        "config": {
            "arch": arch,
            "vocab_size": vocab,
            "context": CONTEXT,
            "embed": HIDDEN,
            "hidden": HIDDEN,
            "layers": 1,
            "bidirectional": kind == "window",
        },
        "level": "char",
        "tokenizer": tokenizer if tokenizer is not None else {"kind": "char", "vocab": []},
        "stateful": kind != "window",
        "context": CONTEXT,
        "state": state,
        "extras": ["hidden"] if kind == "rnn" else [],
        "special": {"pad": 0, "unk": 1, "eos": None},
        "quantized": None,
        "card": {"val_loss": 2.5, "params": 3 * vocab * HIDDEN, "corpus": "test"},
    }
    meta.update(overrides)
    return meta


def build_tiny_model(
    kind: str = "rnn",
    *,
    vocab: int = VOCAB,
    tokenizer: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    meta_text: str | None = None,
    seed: int = 0,
) -> Any:
    """An onnx.ModelProto of the given kind; `meta`/`meta_text` replace the termlm metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    emb = numpy_helper.from_array(rng.normal(size=(vocab, HIDDEN)).astype(np.float32), "emb")
    out_w = numpy_helper.from_array(rng.normal(size=(HIDDEN, vocab)).astype(np.float32), "out_w")
    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "time", vocab])
    nodes = [helper.make_node("Gather", ["emb", "tokens"], ["x"])]  # x [B, T, H]
    inits = [emb, out_w]
    inputs = [tokens]
    outputs = [logits]
    if kind == "rnn":
        w = rng.normal(scale=0.5, size=(1, HIDDEN, HIDDEN)).astype(np.float32)
        r = rng.normal(scale=0.5, size=(1, HIDDEN, HIDDEN)).astype(np.float32)
        inits += [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R")]
        inputs.append(
            helper.make_tensor_value_info("state_h", TensorProto.FLOAT, [1, "batch", HIDDEN])
        )
        outputs.append(
            helper.make_tensor_value_info("new_h", TensorProto.FLOAT, [1, "batch", HIDDEN])
        )
        outputs.append(
            helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "time", HIDDEN])
        )
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "one"))
        nodes += [
            helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),  # [T, B, H]
            helper.make_node(
                "RNN", ["xt", "W", "R", "", "", "state_h"], ["y", "new_h"], hidden_size=HIDDEN
            ),  # y [T, 1, B, H]
            helper.make_node("Squeeze", ["y", "one"], ["ys"]),  # [T, B, H]
            helper.make_node("Transpose", ["ys"], ["hidden"], perm=[1, 0, 2]),  # [B, T, H]
            helper.make_node("MatMul", ["hidden", "out_w"], ["logits"]),
        ]
    elif kind == "memory":
        inputs.append(
            helper.make_tensor_value_info("state_mem", TensorProto.FLOAT, ["batch", "past", HIDDEN])
        )
        outputs.append(
            helper.make_tensor_value_info("new_mem", TensorProto.FLOAT, ["batch", "total", HIDDEN])
        )
        # logits[t] = (x[t] + sum(mem) + cumsum(x)[t]) @ out_w: depends on everything so far
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
        inits.append(numpy_helper.from_array(np.array(1, dtype=np.int64), "axis1s"))
        nodes += [
            helper.make_node("Concat", ["state_mem", "x"], ["new_mem"], axis=1),
            helper.make_node("ReduceSum", ["state_mem", "axis1"], ["past_sum"], keepdims=1),
            helper.make_node("CumSum", ["x", "axis1s"], ["running"]),
            helper.make_node("Add", ["running", "past_sum"], ["context_sum"]),
            helper.make_node("Tanh", ["context_sum"], ["mixed"]),
            helper.make_node("Add", ["mixed", "x"], ["feat"]),
            helper.make_node("MatMul", ["feat", "out_w"], ["logits"]),
        ]
    elif kind == "window":
        logits_1 = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, vocab])
        outputs = [logits_1]
        nodes += [
            helper.make_node("ReduceMean", ["x"], ["pooled"], axes=[1], keepdims=1),  # [B, 1, H]
            helper.make_node("MatMul", ["pooled", "out_w"], ["logits"]),
        ]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(nodes, f"tiny_{kind}", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    text = meta_text if meta_text is not None else json.dumps(meta or _meta(kind, vocab, tokenizer))
    helper.set_model_props(model, {"termlm": text})
    onnx.checker.check_model(model)
    return model


def write_tiny_model(path: Path, kind: str = "rnn", **kwargs: Any) -> Path:
    model = build_tiny_model(kind, **kwargs)
    path.write_bytes(model.SerializeToString())
    return path


def tiny_meta(kind: str = "rnn", **overrides: Any) -> dict[str, Any]:
    """The termlm metadata the tiny model of `kind` carries, with `overrides` applied."""
    return _meta(kind, VOCAB, None, **overrides)
