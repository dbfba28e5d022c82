"""`termlm export`: a training run folder -> one self-contained .onnx model file."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def default_out_path(run_name: str, quantize: str | None) -> Path:
    suffix = f"-{quantize}" if quantize else ""
    return Path("exported") / f"{run_name}{suffix}.onnx"


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n < 2**20 else f"{n / 2**20:.1f} MB"


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
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
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
