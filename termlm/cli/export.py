"""`termlm export`: a training run folder -> one self-contained .onnx model file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from termlm.units import file_size as _size


def default_out_path(run_name: str, quantize: str | None) -> Path:
    suffix = f"-{quantize}" if quantize else ""
    return Path("exported") / f"{run_name}{suffix}.onnx"


def export(
    run: str = typer.Argument(..., help="Run folder written by `termlm train`."),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Model file to write (default: exported/RUN.onnx, or RUN-int8.onnx).",
    ),
    quantize: str | None = typer.Option(
        None, "--quantize", help="int8: quantize the weights (smaller file, slightly different)."
    ),
    name: str | None = typer.Option(None, "--name", help="Model name (default: the file stem)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object of results."),
) -> None:
    """Export a trained run to one .onnx file (weights, tokenizer and card inside), checked
    against PyTorch before it is written."""
    from termlm.export import export_model, load_run
    from termlm.export.quantize import check_quantize

    check_quantize(quantize)
    model, tokenizer, info = load_run(run)
    path = Path(out) if out else default_out_path(info.name, quantize)
    report = export_model(
        model,
        tokenizer,
        card=info.card(),
        name=name or path.stem,
        out_path=path,
        quantize=quantize,
        level=info.level,
    )
    quantized_val = _quantized_val_loss(report.path, info) if report.quantized else None
    if quantized_val is not None:
        _record_own_loss(report.path, quantized_val)
    if as_json:
        data = report.to_dict()
        data["size_bytes"] = report.bytes  # the name `termlm models --json` uses; "bytes" kept
        if report.quantized:
            data["val_loss_before"] = info.result.get("val_loss")
            data["val_loss_after"] = quantized_val
        typer.echo(json.dumps(data))
        return
    checks = ", ".join(f"{c.name} {c.max_diff:.1g}" for c in report.checks if c.max_diff)
    typer.echo(
        f"wrote {report.path} ({_size(report.bytes)}, {report.arch}) in {report.seconds:.1f} s; "
        f"ONNX Runtime matches PyTorch (max difference: {checks or '0'})"
    )
    if report.quantized:
        typer.echo(
            f"{report.quantized}: {_size(report.float_bytes)} -> {_size(report.bytes)}, "
            f"largest logit change {report.quantized_max_diff:.3g}"
        )
        before = info.result.get("val_loss")
        if quantized_val is not None and isinstance(before, float):
            typer.echo(
                f"validation loss {before:.4f} -> {quantized_val:.4f} "
                f"({quantized_val - before:+.4f} nats per token)"
            )
        else:
            typer.echo(
                "note: the training corpus was not found, so the validation loss was not "
                "compared; run `termlm eval MODEL CORPUS --split val` on both files",
                err=True,
            )


def _quantized_val_loss(path: Path, info: Any) -> float | None:
    """The quantized file's loss on the run's own validation split, when its corpus is at hand."""
    from termlm.corpus import read_corpus
    from termlm.errors import TermlmError
    from termlm.runtime.evaluation import split_text
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.scoring import evaluate_ids

    corpus = info.train.get("corpus")
    fraction = info.train.get("val_fraction", 0.1)
    if info.train.get("recipe") == "tutorial" or not isinstance(corpus, str):
        return None
    try:
        text = read_corpus(corpus).text
    except TermlmError:
        return None
    model = load_model(path)
    val = split_text(text, float(fraction))[1]
    result = evaluate_ids(
        model, model.tokenizer.encode(val), chars=len(val), pad_id=model.meta.special.pad or 0
    )
    return float(result.loss)


def _record_own_loss(path: Path, loss: float) -> None:
    """Put the quantized file's own validation figures in its card (the float run's are kept as
    ``val_loss_float``), so `termlm models` shows what this file scores, not its source."""
    import math

    import onnx

    from termlm.atomic import atomic_path
    from termlm.export.metadata import META_KEY
    from termlm.modelfile import read_model_meta

    proto = onnx.load(str(path))
    entry = next(e for e in proto.metadata_props if e.key == META_KEY)
    meta = json.loads(entry.value)
    card = meta["card"]
    before = card.get("val_loss")
    card["val_loss_float"] = before
    card["val_loss"] = loss
    card["val_ppl"] = math.exp(min(loss, 700.0))
    bpc = card.get("val_bpc")
    if isinstance(bpc, (int, float)) and isinstance(before, (int, float)) and before > 0:
        card["val_bpc"] = bpc * loss / before  # bits per character scale with the loss
    entry.value = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        tmp.chmod(0o644)
        read_model_meta(tmp)  # still a model termlm reads
