"""An exported .onnx file back to a PyTorch model: the weights from the graph's initializers.

The exporter renames, transposes, concatenates and reorders weights (an LSTM's four gates
become one ONNX ``W`` in another gate order, a Linear layer's weight a transposed MatMul
operand, a tied output matrix a second copy). Rather than knowing each of those rules, the
reader learns them: it exports a *probe* model of the same configuration whose every weight
holds its own position (1, 2, 3, ...), so each initializer of the probe graph says which
parameter element went where. The real file's initializers are then put back element by
element, and the rebuilt model must reproduce the file's outputs (onnxruntime against
PyTorch) before it is handed out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from termlm.errors import ModelFileError
from termlm.export import checks
from termlm.export.graph import to_onnx_bytes
from termlm.training.models import LanguageModel, build_model

# float32 holds every integer up to 2**24 exactly: the probe's positions must stay below it.
MAX_PROBE_ELEMENTS = 2**24 - 1


def _initializers(proto: Any) -> list[tuple[str, np.ndarray]]:
    from onnx import numpy_helper

    return [(t.name, numpy_helper.to_array(t)) for t in proto.graph.initializer]


def _probe(model: LanguageModel) -> tuple[list[tuple[str, np.ndarray]], int]:
    """Initializers of the graph of ``model`` with every parameter element set to its position
    (1-based, across all distinct parameters in ``named_parameters`` order)."""
    import onnx

    params = [p for _, p in model.named_parameters()]  # a tied weight appears once
    total = sum(p.numel() for p in params)
    if total > MAX_PROBE_ELEMENTS:
        raise ModelFileError(
            f"the model has {total:,} weights, more than the {MAX_PROBE_ELEMENTS:,} this reader "
            "can place",
            "fine-tune from the run folder it was exported from (its safetensors) instead",
        )
    probe = build_model(model.config)
    offset = 1
    with torch.no_grad():
        for p in probe.parameters():
            n = p.numel()
            p.copy_(torch.arange(offset, offset + n, dtype=torch.float64).view(p.shape))
            offset += n
    return _initializers(onnx.load_from_string(to_onnx_bytes(probe))), total


def _pair_up(
    probe: list[tuple[str, np.ndarray]], source: list[tuple[str, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probe array, source array) pairs: by name when every name matches, else by order."""
    by_name = dict(source)
    if all(name in by_name for name, _ in probe):
        pairs = [(array, by_name[name]) for name, array in probe]
    elif len(probe) == len(source):
        pairs = [(p, s) for (_, p), (_, s) in zip(probe, source, strict=True)]
    else:
        raise ModelFileError(
            f"the file's graph has {len(source)} weight tensors where its configuration gives "
            f"{len(probe)}",
            "it was not written by this version of `termlm export`; fine-tune from its run folder",
        )
    for probe_array, source_array in pairs:
        if probe_array.shape != source_array.shape:
            raise ModelFileError(
                f"a weight tensor of the file has shape {source_array.shape} where its "
                f"configuration gives {probe_array.shape}",
                "the file's metadata and graph disagree; fine-tune from its run folder",
            )
    return pairs


def weights_from_onnx(model: LanguageModel, proto: Any) -> None:
    """Put the initializers of ``proto`` (an exported graph of ``model.config``) into ``model``.

    Raises ``ModelFileError`` when the graph does not fit the configuration, or when a weight
    is missing from it.
    """
    probe, total = _probe(model)
    pairs = _pair_up(probe, _initializers(proto))
    flat = np.zeros(total + 1, dtype=np.float32)
    filled = np.zeros(total + 1, dtype=bool)
    for positions, values in pairs:
        if positions.dtype.kind != "f":
            continue
        as_int = positions.astype(np.int64)
        is_weight = (
            positions.size > 0
            and np.all(as_int == positions)
            and as_int.min() >= 1
            and as_int.max() <= total
        )
        if not is_weight:
            continue  # a constant of the graph, not a copy of a weight
        flat[as_int.ravel()] = values.astype(np.float32).ravel()
        filled[as_int.ravel()] = True
    missing = int((~filled[1:]).sum())
    if missing:
        raise ModelFileError(
            f"{missing:,} of the model's {total:,} weights are not in the file's graph",
            "fine-tune from the run folder the file was exported from",
        )
    offset = 1
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(torch.from_numpy(flat[offset : offset + n]).view(p.shape))
            offset += n


def check_reproduces(model: LanguageModel, onnx_bytes: bytes, path: Path) -> float:
    """The rebuilt model's outputs match the file's (onnxruntime) on random inputs; returns the
    largest difference, or raises ``ModelFileError``."""
    was_training = model.training
    model.eval()
    try:
        session = checks.make_session(onnx_bytes)
        return checks.check_parity(model, session).max_diff
    except checks.ExportCheckFailed as exc:
        raise ModelFileError(
            f"the weights read back from {path} do not reproduce the file's outputs "
            f"({exc.message.split(': ', 1)[-1].removesuffix('; nothing was written')})",
            "fine-tune from the run folder the file was exported from",
        ) from None
    finally:
        model.train(was_training)


def load_onnx_model(path: Path, config: Any) -> tuple[LanguageModel, float]:
    """The PyTorch model of ``config`` holding the weights of the exported file at ``path``,
    checked against the file; and the largest output difference of that check."""
    import onnx

    data = path.read_bytes()
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFileError(f"cannot read the graph of {path}: {exc}") from None
    model = build_model(config)
    weights_from_onnx(model, proto)
    return model, check_reproduces(model, data, path)
