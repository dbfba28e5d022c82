"""`termlm bakeoff`: every architecture under one budget, side by side, in bits per character."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from termlm.bounds import check_seed, check_threads
from termlm.config import ModelConfig
from termlm.errors import ConfigError
from termlm.training.options import TrainOptions, build_options


def _parse_arch(spec: str) -> tuple[str, bool]:
    if spec.endswith("-bi"):
        return spec[:-3], True
    return spec, False


def count_params(config: ModelConfig) -> int:
    from termlm.training.models import build_model

    return sum(p.numel() for p in build_model(config).parameters())


def size_for_params(config: ModelConfig, target: int) -> ModelConfig:
    """The config with the hidden (and for the transformer, width) size closest to `target` params."""
    step = config.heads * 8 if config.arch == "transformer" else 8
    best, best_gap = config, math.inf
    for hidden in range(step, 2049, step):
        candidate = ModelConfig.from_dict({**config.to_dict(), "hidden": hidden})
        if config.arch == "transformer":
            candidate.embed = hidden
        gap = abs(count_params(candidate) - target)
        if gap < best_gap:
            best, best_gap = candidate, gap
        elif count_params(candidate) > target:
            break
    return best


def run_bakeoff(
    corpus: str,
    *,
    level: str,
    minutes: float | None,
    params: int | None,
    archs: list[str],
    threads: int | None,
    seed: int,
    out: str,
    show_progress: bool,
) -> list[dict[str, Any]]:
    from termlm.corpus import read_corpus
    from termlm.tokenizers import fit_tokenizer
    from termlm.training.loop import train

    check_threads(threads)
    check_seed(seed)
    if params is not None and params <= 0:
        raise ConfigError(f"--params must be positive, got {params}", "for example --params 200000")
    if not archs:
        raise ConfigError(
            "--archs names no architecture", "for example --archs lstm,gru,transformer"
        )
    text = read_corpus(corpus).text  # refuse a missing or unusable corpus before any training
    vocab_size = fit_tokenizer(level, text).vocab_size if params else None
    del text
    if minutes is None and params is None:
        minutes = 2.5
    plans: list[tuple[str, TrainOptions]] = []
    for spec in archs:  # every architecture's options are checked before the first one trains
        arch, bidirectional = _parse_arch(spec)
        options = build_options(
            corpus=corpus,
            level=level,
            arch=arch,
            bidirectional=bidirectional,
            minutes=minutes,
            threads=threads,
            seed=seed,
            out=out,
            name=f"{level}-{spec}",
            epochs=None if minutes else 1.0,
            command=f"termlm bakeoff {corpus} --level {level}",
        )
        options.validate()
        plans.append((spec, options))
    rows: list[dict[str, Any]] = []
    for spec, options in plans:
        if params:
            sized = ModelConfig.from_dict({**options.model.to_dict(), "vocab_size": vocab_size})
            options.model = size_for_params(sized, params)
        if show_progress:
            Console(stderr=True).print(f"[bold]{spec}[/bold]")
        result = train(options, show_progress=show_progress)
        rows.append(
            {
                "arch": spec,
                "val_loss": result["val_loss"],
                "val_bpc": result["val_bpc"],
                "val_ppl": result["val_ppl"],
                "params": result["params"],
                "train_tokens_per_s": result["train_tokens_per_s"],
                "steps": result["steps"],
                "seconds": result["train_seconds"],
                "run_dir": result["run_dir"],
            }
        )
    rows.sort(key=lambda r: r["val_bpc"] if r["val_bpc"] is not None else r["val_loss"])
    return rows


def print_leaderboard(rows: list[dict[str, Any]]) -> None:
    table = Table(title="bakeoff (best first)")
    for column in (
        "arch",
        "val loss (nats/token)",
        "bits/char",
        "ppl",
        "params",
        "train tok/s",
        "steps",
    ):
        table.add_column(column, justify="left" if column == "arch" else "right")
    for row in rows:
        table.add_row(
            row["arch"],
            f"{row['val_loss']:.4f}",
            f"{row['val_bpc']:.3f}" if row["val_bpc"] is not None else "-",
            f"{row['val_ppl']:.2f}",
            f"{row['params']:,}",
            f"{row['train_tokens_per_s']:,.0f}",
            str(row["steps"]),
        )
    Console().print(table)
