"""``export_model``: a PyTorch language model -> one self-contained, checked ONNX file."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from termlm.atomic import atomic_path
from termlm.errors import ConfigError, ModelFileError
from termlm.export import checks
from termlm.export.graph import to_onnx_bytes
from termlm.export.metadata import META_KEY, build_metadata, tokenizer_facts
from termlm.export.quantize import check_quantize, quantize_int8
from termlm.training.models import LanguageModel

MAX_BYTES = 2**31 - 1  # protobuf's limit for one file


@dataclass
class ExportReport:
    path: Path
    name: str
    arch: str
    bytes: int  # size of the written file
    float_bytes: int  # size of the float32 graph (same as bytes unless quantized)
    quantized: str | None = None
    quantized_max_diff: float | None = None  # largest logit difference, int8 vs float32
    checks: list[checks.CheckResult] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def export_model(
    model: LanguageModel,
    tokenizer_json: dict[str, Any],
    *,
    card: dict[str, Any],
    name: str,
    out_path: Path,
    quantize: str | None = None,
    level: str | None = None,
    special: dict[str, int | None] | None = None,
) -> ExportReport:
    """Export, check (symbolic axes, ORT vs PyTorch, steps vs one pass), then write atomically.

    ``level`` and ``special`` default to what the tokenizer's JSON says. On any failed check a
    ``ModelFileError`` names the check and the numbers, and nothing is written.
    """
    import onnx

    check_quantize(quantize)
    started = time.perf_counter()
    facts = tokenizer_facts(tokenizer_json)
    level = level or facts.level
    if level is None:
        raise ConfigError(
            "cannot tell the tokenizer's level (word, char or bpe) from its JSON",
            "pass the level explicitly",
        )
    if facts.vocab_size is not None and facts.vocab_size != model.config.vocab_size:
        raise ConfigError(
            f"the tokenizer has {facts.vocab_size} tokens but the model {model.config.vocab_size}",
            "export the tokenizer.json of the same run as the weights",
        )
    was_training = model.training
    model.eval()
    try:
        float_bytes = to_onnx_bytes(model)
        proto = onnx.load_from_string(float_bytes)
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as exc:
            raise checks._fail("onnx checker", str(exc).splitlines()[0]) from None
        results = [checks.check_symbolic_axes(proto, model)]
        session = checks.make_session(float_bytes)
        results.append(checks.check_parity(model, session))
        results.append(checks.check_steps(model, session))
        ops = sorted({node.op_type for node in proto.graph.node})

        quantized_diff = None
        if quantize == "int8":
            graph_bytes = quantize_int8(float_bytes)
            proto = onnx.load_from_string(graph_bytes)
            quantized_diff = _quantized_difference(model, session, graph_bytes)
            ops = sorted({node.op_type for node in proto.graph.node})
    finally:
        model.train(was_training)

    metadata = build_metadata(
        config=model.config,
        tokenizer=tokenizer_json,
        level=level,
        name=name,
        state=[spec.to_dict() for spec in model.state_spec()],
        extras=model.extras_names(),
        special=special if special is not None else facts.special,
        card=card,
        quantized=quantize,
    )
    text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
    _check_metadata(text)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, text
    proto.producer_name = "termlm"
    data = proto.SerializeToString()
    if len(data) > MAX_BYTES:
        raise ModelFileError(
            f"the model is {len(data) / 2**30:.1f} GB, over the 2 GB a single ONNX file can hold",
            "train a smaller model (fewer --layers or a smaller --hidden), or --quantize int8",
        )
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data)
        tmp.chmod(0o644)  # a model file is meant to be shared, not private like a temp file
        _check_written(tmp)
    return ExportReport(
        path=out_path,
        name=name,
        arch=model.config.arch + ("-bidirectional" if model.config.bidirectional else ""),
        bytes=len(data),
        float_bytes=len(float_bytes),
        quantized=quantize,
        quantized_max_diff=quantized_diff,
        checks=results,
        ops=ops,
        seconds=time.perf_counter() - started,
    )


def _check_metadata(text: str) -> None:
    """The runtime's reader accepts the metadata we are about to write."""
    from termlm.modelfile import parse_meta

    try:
        parse_meta(text)
    except ModelFileError as exc:
        raise checks._fail("metadata", exc.message) from None


def _check_written(path: Path) -> None:
    """The file on disk reads back as a self-contained termlm model."""
    from termlm.modelfile import read_model_meta

    try:
        read_model_meta(path)
    except ModelFileError as exc:
        raise checks._fail("read back", exc.message) from None


def _quantized_difference(model: LanguageModel, float_session: Any, graph_bytes: bytes) -> float:
    """Runs the quantized graph and returns its largest logit difference from float32."""
    try:
        session = checks.make_session(graph_bytes)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise checks._fail("quantized graph loads", str(exc).splitlines()[0]) from None
    rng = np.random.default_rng(2)
    feeds, _ = checks.parity_feeds(model, 4, 17, rng)
    want = checks.ort_outputs(float_session, feeds)["logits"]
    got = checks.ort_outputs(session, feeds)["logits"]
    if got.shape != want.shape or not np.isfinite(got).all():
        raise checks._fail("quantized graph runs", f"logits {got.shape}, expected {want.shape}")
    return float(np.abs(got - want).max())
