"""`termlm eval`: loss, perplexity and bits per character of a model on a text."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import typer

from termlm.bounds import check_threads
from termlm.errors import ConfigError, CorpusError
from termlm.jsonout import dumps as json_dumps

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from rich.progress import Progress, TaskID

    from termlm.corpus import Corpus
    from termlm.tokenizers import Tokenizer


def eval_(
    model: str = typer.Argument(..., help="Model name (see `termlm models`) or .onnx path."),
    corpus: str = typer.Argument(..., help="Text file to score."),
    split: str = typer.Option(
        "val", "--split", help="val: the part of the text training held out (see --val-split); all."
    ),
    val_split: str | None = typer.Option(
        None,
        "--val-split",
        help="tail (the last --val-fraction) or interleaved (every k-th block), as in training "
        "(default: the model's own, else tail).",
    ),
    val_fraction: float | None = typer.Option(
        None,
        "--val-fraction",
        help="Fraction of the text, by characters, held out in training (default: the model's "
        "own, else 0.1).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    batch: int = typer.Option(16, "--batch", help="Chunks scored per model call."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for onnxruntime."),
) -> None:
    """Score a model on a text: loss (nats/token), perplexity, bits per character."""
    from termlm.runtime.evaluation import VAL_SPLITS, describe_split, split_validation
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.registry import resolve_model
    from termlm.runtime.scoring import evaluate_ids

    if split not in ("val", "all"):
        raise ConfigError(f"--split must be val or all, got {split!r}")
    if val_split is not None and val_split not in VAL_SPLITS:
        raise ConfigError(
            f"--val-split must be tail or interleaved, got {val_split!r}",
            "use the split the model was trained with (`termlm train --val-split`)",
        )
    if val_fraction is not None and not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if batch < 1:
        raise ConfigError(f"--batch must be 1 or more, got {batch}")
    check_threads(threads)
    lm = load_model(resolve_model(model), threads=threads)
    how, fraction = _model_split(lm.meta.card, val_split, val_fraction)
    from termlm.corpusstream import is_regular_file

    ids: Sequence[int] | np.ndarray
    if is_regular_file(corpus):  # tokenized once into a token file, read by memory map
        ids, chars = _token_file_ids(corpus, lm.tokenizer, split, how, fraction)
    else:
        source = _read_with_progress(corpus)
        if source.note:
            typer.echo(f"note: {source.note}", err=True)
        text = source.text
        if split == "val":
            text = split_validation(text, fraction, how)[1]
        ids, chars = lm.tokenizer.encode(text), len(text)
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
            chars=chars,
            batch=batch,
            pad_id=pad,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if as_json:
        where = {"val_split": how, "val_fraction": fraction} if split == "val" else {}
        typer.echo(json_dumps({"model": lm.name, "split": split, **where, **result.to_json()}))
        return
    ppl = f"{result.ppl:.3f}" if math.isfinite(result.ppl) else "inf"
    from termlm.textsafe import safe_line

    part = f"val, {describe_split(fraction, how)}" if split == "val" else "all"
    typer.echo(
        f"{safe_line(lm.name)} on {part} ({result.tokens} tokens, {result.chars} chars): "
        f"loss {result.loss:.4f} nats/token  ppl {ppl}  bpc {result.bpc:.4f}"
    )


def _token_file_ids(
    path: str, tokenizer: Tokenizer, split: str, how: str, val_fraction: float
) -> tuple[np.ndarray, int]:
    """(ids, characters) of the split, from the token file of the corpus under the model's
    tokenizer (the file training wrote when the tokenizer and split are the same)."""
    from termlm.corpusstream import iter_text, scan_corpus
    from termlm.tokenfile import Split, TextSource, token_file

    with _byte_progress("reading") as (progress, task):

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        scan = scan_corpus(path, on_progress=advance)
        if scan.note:
            typer.echo(f"note: {scan.note}", err=True)
        source = TextSource(
            sha256=scan.sha256,
            name=scan.name,
            chars=scan.chars,
            size=scan.size,
            chunks=lambda on_progress: iter_text(scan, on_progress=on_progress),
        )
        progress.update(task, description="tokenizing", completed=0)
        part = Split(how, val_fraction) if split == "val" else Split("none")
        made, _ = token_file(source, tokenizer, part, on_progress=advance)
    if split == "val":
        return made.val, made.val_chars
    return made.train, int(made.meta["chars"])


def _model_split(
    card: Mapping[str, Any], val_split: str | None, val_fraction: float | None
) -> tuple[str, float]:
    """The validation split to score: what was asked, else the model's own (its card), else the
    last 10%."""
    how = val_split or card.get("val_split")
    fraction = val_fraction if val_fraction is not None else card.get("val_fraction")
    if how not in ("tail", "interleaved"):
        how = "tail"
    if not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
        fraction = 0.1
    return str(how), float(fraction)


def _read_with_progress(path: str) -> Corpus:
    """read_corpus with a transient bar on a terminal (a pipe or FIFO may take a while)."""
    from termlm.corpus import read_corpus

    with _byte_progress("reading") as (progress, task):
        return read_corpus(
            path, on_progress=lambda done, total: progress.update(task, completed=done, total=total)
        )


@contextlib.contextmanager
def _byte_progress(description: str) -> Iterator[tuple[Progress, TaskID]]:
    """A transient bar of bytes on stderr, at a terminal only; its task's description changes."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        yield progress, progress.add_task(description, total=None)
