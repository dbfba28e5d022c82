"""`termlm eval`: loss, perplexity and bits per character of a model on a text."""

from __future__ import annotations

import math

import typer

from termlm.errors import ConfigError, CorpusError
from termlm.jsonout import dumps as json_dumps


def eval_(
    model: str = typer.Argument(..., help="Model name (see `termlm models`) or .onnx path."),
    corpus: str = typer.Argument(..., help="Text file to score."),
    split: str = typer.Option(
        "val", "--split", help="val: the last --val-fraction of the text (as in training); all."
    ),
    val_fraction: float = typer.Option(
        0.1, "--val-fraction", help="Fraction of the text, by characters, held out in training."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    batch: int = typer.Option(16, "--batch", help="Chunks scored per model call."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for onnxruntime."),
) -> None:
    """Score a model on a text: loss (nats/token), perplexity, bits per character."""
    from termlm.corpus import read_corpus
    from termlm.runtime.evaluation import split_text
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.registry import resolve_model
    from termlm.runtime.scoring import evaluate_ids

    if split not in ("val", "all"):
        raise ConfigError(f"--split must be val or all, got {split!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if batch < 1:
        raise ConfigError(f"--batch must be 1 or more, got {batch}")
    lm = load_model(resolve_model(model), threads=threads)
    source = read_corpus(corpus)
    if source.note:
        typer.echo(f"note: {source.note}", err=True)
    text = source.text
    if split == "val":
        text = split_text(text, val_fraction)[1]
    ids = lm.tokenizer.encode(text)
    if len(ids) < 2:
        raise CorpusError(
            f"the {'validation split' if split == 'val' else 'text'} has {len(ids)} token(s); "
            "at least 2 are needed",
            "use a longer text, --split all, or a larger --val-fraction",
        )
    pad = lm.meta.special.pad if lm.meta.special.pad is not None else 0

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} tokens"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("eval", total=len(ids) - 1)
        result = evaluate_ids(
            lm,
            ids,
            chars=len(text),
            batch=batch,
            pad_id=pad,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if as_json:
        typer.echo(json_dumps({"model": lm.name, "split": split, **result.to_json()}))
        return
    ppl = f"{result.ppl:.3f}" if math.isfinite(result.ppl) else "inf"
    from termlm.textsafe import safe_line

    typer.echo(
        f"{safe_line(lm.name)} on {split} ({result.tokens} tokens, {result.chars} chars): "
        f"loss {result.loss:.4f} nats/token  ppl {ppl}  bpc {result.bpc:.4f}"
    )
