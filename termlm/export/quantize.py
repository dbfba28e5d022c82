"""int8 dynamic quantization of an exported graph (weights int8, activations quantized on the fly)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from termlm.errors import ConfigError

QUANTIZE_CHOICES = ("int8",)


def check_quantize(quantize: str | None) -> None:
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ConfigError(
            f"unknown quantization {quantize!r}",
            f"choose one of: {', '.join(QUANTIZE_CHOICES)} (or leave it out for float32)",
        )


def quantize_int8(onnx_bytes: bytes) -> bytes:
    """Dynamic int8 quantization of the LSTM/GRU/RNN and MatMul/Gemm weights, per tensor."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger("root").setLevel(logging.ERROR)  # the quantizer logs advice on every call
    with tempfile.TemporaryDirectory(prefix="termlm-quant-") as folder:
        source = Path(folder) / "float.onnx"
        target = Path(folder) / "int8.onnx"
        source.write_bytes(onnx_bytes)
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            # per tensor: one scale per weight matrix, fewer ops per step than per channel, and
            # the embedding stays float (a quantized table would be dequantized at every step)
            per_channel=False,
            op_types_to_quantize=["LSTM", "GRU", "RNN", "MatMul", "Gemm"],
            extra_options={"MatMulConstBOnly": True},
        )
        proto = onnx.load(str(target), load_external_data=False)
    return bytes(proto.SerializeToString())
