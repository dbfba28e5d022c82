"""`termlm score`: every token of a text coloured by how surprised a model is by it."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from termlm.errors import ConfigError, CorpusError
from termlm.jsonout import dumps as json_dumps

MAX_STDIN_BYTES = 256 * 2**20  # text read from stdin; a larger text goes in a file (--file)


def read_text(text: str | None, file: Path | None) -> str:
    """The text to score: the argument, stdin for '-', or a file; bounded."""
    if text is not None and file is not None:
        raise ConfigError("give the text or --file, not both")
    if file is not None:
        from termlm.corpus import read_corpus

        source = read_corpus(file)
        if source.note:
            typer.echo(f"note: {source.note}", err=True)
        return source.text
    if text is None:
        if sys.stdin.isatty():
            raise ConfigError(
                "no text to score", "give it as an argument, '-' to read stdin, or --file PATH"
            )
        text = "-"
    if text != "-":
        return text
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise CorpusError(
            f"the text on stdin is over {MAX_STDIN_BYTES // 2**20} MiB",
            "save it to a file and score part of it with --file",
        )
    from termlm.corpus import decode_bytes

    decoded, _, note = decode_bytes(data)
    if note:
        typer.echo(f"note: {note}", err=True)
    return decoded


def score(
    model: str = typer.Argument(..., help="Model name (see `termlm models`) or .onnx path."),
    text: str | None = typer.Argument(
        None,
        help="The text to score; '-' reads stdin (the default when stdin is a pipe).",
        metavar="TEXT|-",
        show_default=False,
    ),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Read the text from this file.", metavar="PATH"
    ),
    compare: str | None = typer.Option(
        None,
        "--compare",
        "-c",
        help="A second model: which of the two knows the text better, and where.",
        metavar="MODEL2",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object: every token's scores and the totals."
    ),
    as_jsonl: bool = typer.Option(
        False, "--jsonl", help="Stream one JSON object per token, then one of totals."
    ),
    top: int = typer.Option(
        5, "--top", help="Alternatives kept per token in JSON.", metavar="K", min=0, max=100
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for onnxruntime.", metavar="N"
    ),
) -> None:
    """Score a text token by token: surprisal, perplexity and bits per character.

    On a terminal the text is coloured from green (expected) to red (surprising); in a pipe each
    token gets a line: its surprisal in nats, then the token. Long texts stream as they are read.
    """
    from termlm.cli.color import use_colour
    from termlm.cli.score_compare import CharCosts
    from termlm.cli.score_compare import compare as compare_models
    from termlm.cli.score_view import (
        collect_json,
        stream_coloured,
        stream_comparison,
        stream_jsonl,
        stream_lines,
        summary_line,
    )
    from termlm.decoding.textscore import ScoreTotals, iter_token_scores
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.registry import resolve_model

    if as_json and as_jsonl:
        raise ConfigError("--json and --jsonl are two forms of the same output; choose one")
    body = read_text(text, file)
    if not body:
        raise ConfigError("the text is empty", "give a text with at least one token")
    lm = load_model(resolve_model(model), threads=threads)
    tokenizer = lm.tokenizer
    ids = list(tokenizer.encode(body))
    if not ids:
        raise CorpusError(
            f"{lm.name} reads no token in this text", "a word model skips punctuation: give words"
        )
    out = sys.stdout
    if compare is not None:
        other = load_model(resolve_model(compare), threads=threads)
        other_ids = list(other.tokenizer.encode(body))
        names = (lm.name, other.name if other.name != lm.name else f"{other.name} (2)")
        first = CharCosts(body, tokenizer, iter_token_scores(lm, ids, top_k=0))
        second = CharCosts(body, other.tokenizer, iter_token_scores(other, other_ids, top_k=0))
        if as_json or as_jsonl:
            result = compare_models(body, names, first, second).to_json()
            if as_jsonl:  # a single line, tagged as every JSON Lines record is
                result = {"event": "comparison", **result}
            typer.echo(json_dumps(result, ensure_ascii=False))
            return
        stream_comparison(body, names, first, second, out, colour=use_colour(out))
        return
    totals = ScoreTotals(chars=len(body))
    scores = iter_token_scores(lm, ids, top_k=top)
    if as_json:
        tokens = collect_json(body, tokenizer, scores, totals)
        payload = {"model": lm.name, **totals.to_json(), "scores": tokens}
        typer.echo(json_dumps(payload, ensure_ascii=False))
        return
    if as_jsonl:
        stream_jsonl(body, tokenizer, scores, totals, out)
        totals_event = {"event": "totals", "model": lm.name, **totals.to_json()}
        typer.echo(json_dumps(totals_event, ensure_ascii=False))
        return
    if use_colour(out):
        stream_coloured(body, tokenizer, scores, totals, out)
    else:
        stream_lines(tokenizer, scores, totals, out)
    typer.echo(summary_line(lm.name, totals))
