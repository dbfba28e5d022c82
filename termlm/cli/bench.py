"""`termlm bench`: how fast a model runs here, and what bounds it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from termlm.bounds import check_threads
from termlm.errors import ConfigError
from termlm.jsonout import dumps as json_dumps


def torch_tokens_per_s(source: Path, tokens: int, threads: int) -> float | None:
    """PyTorch eager, one step per token, of a run folder's model or of a model file's (its
    weights put back onto the PyTorch architecture, checked against onnxruntime); None when
    torch is not installed.

    The only place outside training and export that may import torch, and only when asked.
    """
    from termlm.cli.extras import missing

    if missing("train"):  # torch and safetensors, to rebuild the run's model
        return None
    import torch

    from termlm.training.init_from import find_source

    model, _ = find_source(str(source)).load_model()
    torch.set_num_threads(threads)
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(2, vocab - 1), vocab, (1, tokens), generator=generator)
    context = model.config.context
    best = 0.0
    with torch.inference_mode():
        for _ in range(3):  # the best of three, as the runtime's own figures are
            state = model.initial_state(1)
            window = torch.zeros((1, context), dtype=torch.long)
            model(ids[:, :1] if model.stateful else window, state)  # warm-up
            start = time.perf_counter()
            for t in range(tokens):
                if model.stateful:
                    _, state = model(ids[:, t : t + 1], state)
                else:
                    window = torch.cat([window[:, 1:], ids[:, t : t + 1]], dim=1)
                    model(window, ())
            best = max(best, tokens / (time.perf_counter() - start))
    return best


def _print_table(report: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"
        return str(value)

    from termlm.textsafe import safe_line

    width = max(len(key) for key in report)
    for key, value in report.items():
        typer.echo(f"{key.ljust(width)}  {safe_line(fmt(value))}")


def bench(
    model: str | None = typer.Argument(
        None, help="Model name (see `termlm models`) or .onnx path (default: the bundled model)."
    ),
    tokens: int = typer.Option(200, "--tokens", help="Tokens to time one at a time."),
    threads: int = typer.Option(1, "--threads", help="CPU threads (onnxruntime and torch)."),
    run: Path | None = typer.Option(
        None, "--run", help="The model's training run folder: also time PyTorch eager."
    ),
    torch_eager: bool = typer.Option(
        False,
        "--torch",
        help="Also time PyTorch eager on the model file's own weights (no run folder needed).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure a model's speed: per token, prefill, batch and beam steps, window re-reads."""
    from termlm.runtime.bench import run_bench
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.registry import resolve_model

    if tokens < 1:
        raise ConfigError(f"--tokens must be 1 or more, got {tokens}")
    check_threads(threads)
    lm = load_model(resolve_model(model), threads=threads)
    report = run_bench(lm, tokens=tokens)
    source = run if run is not None else (lm.path if torch_eager else None)
    report["torch_tokens_per_s"] = (
        torch_tokens_per_s(source, tokens, threads) if source is not None else None
    )
    if source is not None and report["torch_tokens_per_s"] is None:
        from termlm.cli.extras import INSTALL, missing

        typer.echo(
            f"note: torch_tokens_per_s is empty: timing the run in PyTorch needs the train extra "
            f"({', '.join(missing('train'))} not installed): {INSTALL}",
            err=True,
        )
    if as_json:
        typer.echo(json_dumps(report))
    else:
        _print_table(report)
