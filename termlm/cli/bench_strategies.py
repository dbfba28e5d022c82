"""`termlm bench --strategies`: the generation loop's speed per strategy, beside the model's."""

from __future__ import annotations

import typer

from termlm.errors import ConfigError
from termlm.jsonout import dumps as json_dumps


def parse_lengths(text: str) -> list[int]:
    try:
        lengths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--lengths must be whole numbers separated by commas, got {text!r}",
            "e.g. --lengths 500,2000,8000",
        ) from None
    return lengths


def strategies_table(
    model: str | None,
    threads: int,
    lengths: str,
    repeat: int,
    clock: str | None,
    as_json: bool,
    *,
    chat: bool = False,
) -> None:
    """The table; ``chat``: the listener wants what the chat shows, else what ``generate`` does."""
    from termlm.decoding import build_plugin_manager
    from termlm.decoding.speed import (
        HEADER,
        STRATEGIES,
        check_request,
        format_row,
        load_line,
        measure,
        pick_clock,
    )
    from termlm.runtime.onnx_model import load_model
    from termlm.runtime.registry import resolve_model

    ns = parse_lengths(lengths)
    names = list(STRATEGIES)
    check_request(names, ns, repeat)
    chosen = pick_clock(clock, threads)
    lm = load_model(resolve_model(model), threads=threads)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    alternatives = 5 if chat else 0
    rows = measure(
        lm,
        lm.tokenizer,
        names,
        ns,
        registry=registry,
        repeat=repeat,
        clock=chosen,
        alternatives=alternatives,
        live_beams=chat,
    )
    if as_json:
        report = {
            "model": lm.name,
            "threads": threads,
            "clock": chosen,
            "repeat": repeat,
            "alternatives": alternatives,
            "live_beams": chat,
            "rows": [row.as_dict() for row in rows],
            "load": load_line(),
        }
        typer.echo(json_dumps(report))
        return
    wants = "5 alternatives and the live beams" if chat else "no alternatives, no live beams"
    typer.echo(
        f"{lm.name}, {threads} thread(s), median of {repeat}, {chosen} clock, {wants}", err=True
    )
    typer.echo(load_line() + " (before)", err=True)
    typer.echo(HEADER)
    for row in rows:
        typer.echo(format_row(row))
    typer.echo(load_line() + " (after)", err=True)
