"""`termlm bakeoff`: every architecture under one budget, side by side, in bits per character."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from termlm.bounds import check_seed, check_threads
from termlm.config import ModelConfig
from termlm.errors import ConfigError, RunError
from termlm.training.checkpoint import read_json, write_json
from termlm.training.evalplan import MIN_VALIDATIONS, measure_seconds_per_token, tokens_for_budget
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


BAKEOFF_FILE = "bakeoff.json"


def bakeoff_folder(out: str, corpus: str, level: str, name: str | None) -> Path:
    """Where a new bakeoff keeps its runs: OUT/NAME (default: corpus-level-time)."""
    if name is None:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(corpus).stem).strip("-") or "corpus"
        name = f"{stem}-{level}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    folder = Path(out) / name
    if folder.exists() and any(folder.iterdir()):
        raise RunError(
            f"the bakeoff folder {folder} already exists",
            f"pick another --name, or continue it with: termlm bakeoff --resume {folder}",
        )
    return folder


def load_plan(folder: Path) -> dict[str, Any]:
    """The settings a bakeoff was started with (for --resume)."""
    if not folder.is_dir():
        raise RunError(f"no bakeoff folder at {folder}", "give the folder a bakeoff printed")
    plan = read_json(folder / BAKEOFF_FILE)
    if not isinstance(plan, dict) or not isinstance(plan.get("archs"), list):
        raise RunError(f"{folder / BAKEOFF_FILE} is not a bakeoff plan", "start a new bakeoff")
    return plan


def common_eval_tokens(
    plans: list[tuple[str, TrainOptions]],
    vocab_size: int,
    budget: float,
    total: int,
    clock: str = "wall",
) -> int | None:
    """One validation size for every architecture given (so their figures compare), sized so
    that the slowest one's validations, and the samples shown with them, fit its share of the
    slot."""
    import numpy as np
    import torch

    from termlm.training.clock import budget_clock
    from termlm.training.loop import eval_batches, evaluate_batches
    from termlm.training.models import build_model

    rng = np.random.default_rng(0)
    ids = rng.integers(1, max(vocab_size, 2), size=min(total, 4096) + 1)
    slowest = 0.0
    for _, options in plans:
        config = ModelConfig.from_dict({**options.model.to_dict(), "vocab_size": vocab_size})
        model = build_model(config)
        seconds = measure_seconds_per_token(
            lambda n, m=model, c=config: (
                evaluate_batches(  # type: ignore[misc]
                    m, eval_batches(ids[: n + 1], c, 0), torch.device("cpu")
                ).tokens
            ),
            len(ids) - 1,
            budget_clock(clock),  # timed on the clock the slots are counted on
        )
        slowest = max(slowest, seconds)
    return tokens_for_budget(slowest, budget, MIN_VALIDATIONS + 1, total)  # +1: the samples


def run_bakeoff(
    corpus: str | None,
    *,
    level: str,
    minutes: float | None,
    params: int | None,
    archs: list[str],
    threads: int | None,
    seed: int,
    out: str,
    show_progress: bool,
    name: str | None = None,
    resume: str | None = None,
    on_row: Callable[[list[dict[str, Any]]], None] | None = None,
    budget_clock: str = "wall",
) -> list[dict[str, Any]]:
    """Train every architecture under one budget; ``on_row`` sees the leaderboard after each."""
    from termlm.training.defaults import default_threads
    from termlm.training.loop import TrainingInterrupted, train
    from termlm.training.tokendata import fitted_tokenizer, open_corpus

    check_threads(threads)
    check_seed(seed)
    if resume is not None:
        folder = Path(resume)
        saved = load_plan(folder)
        corpus, level, minutes, params = (
            saved["corpus"],
            saved["level"],
            saved["minutes"],
            saved["params"],
        )
        archs, seed, threads = saved["archs"], saved["seed"], threads or saved["threads"]
        eval_tokens = saved.get("eval_tokens")
        budget_clock = saved.get("budget_clock", "wall")
    elif corpus is None:
        raise ConfigError("no corpus given", "name a text file: termlm bakeoff CORPUS.txt")
    if params is not None and params <= 0:
        raise ConfigError(f"--params must be positive, got {params}", "for example --params 200000")
    if not archs:
        raise ConfigError(
            "--archs names no architecture", "for example --archs lstm,gru,transformer"
        )
    assert corpus is not None
    # refuse a missing or unusable corpus before any training; the tokenizer fitted here is
    # cached, and every architecture's run reuses it (and the token file the first one writes)
    opened = open_corpus(corpus, show_progress=show_progress)
    fitting = TrainOptions(corpus=corpus, level=level)
    vocab_size = fitted_tokenizer(opened, fitting, show_progress=show_progress).vocab_size
    chars = opened.source.chars
    val_total = chars - int(chars * 0.9)  # an upper bound on the validation tokens
    if minutes is None and params is None:
        minutes = 2.5
    threads = threads or default_threads().threads  # one choice for every architecture
    plans: list[tuple[str, TrainOptions]] = []
    for spec in archs:  # every architecture's options are checked before the first one trains
        arch, bidirectional = _parse_arch(spec)
        options = build_options(
            corpus=corpus,
            level=level,
            arch=arch,
            bidirectional=bidirectional,
            minutes=minutes,
            budget_clock=budget_clock,
            threads=threads,
            seed=seed,
            out="",
            name=spec,
            epochs=None if minutes else 1.0,
            command=f"termlm bakeoff {corpus} --level {level}",
        )
        options.validate()
        if params:
            sized = ModelConfig.from_dict({**options.model.to_dict(), "vocab_size": vocab_size})
            options.model = size_for_params(sized, params)
            options.given = [*options.given, "embed", "hidden"]
        plans.append((spec, options))
    if resume is None:
        folder = bakeoff_folder(out, corpus, level, name)
        # Window models read a whole window per validation token, tens of times slower: they
        # size their own validations (and their rows say how many tokens they read).
        stateful = [(spec, o) for spec, o in plans if o.model.stateful]
        eval_tokens = (
            common_eval_tokens(stateful, vocab_size, minutes * 60.0, val_total, budget_clock)
            if minutes and stateful
            else None
        )
        folder.mkdir(parents=True, exist_ok=True)
        write_json(
            folder / BAKEOFF_FILE,
            {
                "corpus": corpus,
                "level": level,
                "minutes": minutes,
                "budget_clock": budget_clock,
                "params": params,
                "archs": archs,
                "seed": seed,
                "threads": threads,
                "eval_tokens": eval_tokens,
            },
        )
    console = Console(stderr=True)
    if show_progress:
        console.print(Text(f"bakeoff in {folder} ({threads} thread(s) for every architecture)"))
    rows: list[dict[str, Any]] = []
    for spec, options in plans:
        options.out = str(folder)
        if options.model.stateful or not minutes:
            options.eval_tokens = eval_tokens if eval_tokens is not None else 0
        options.final_eval = False  # every architecture ranked on the same validation tokens
        run_dir = folder / spec
        if (run_dir / "result.json").exists():
            result = read_json(run_dir / "result.json")
        else:
            if show_progress:
                console.print(Text(spec, style="bold"))
            again = (run_dir / "trainer.json").exists()
            try:
                result = train(
                    options,
                    show_progress=show_progress,
                    resume=str(run_dir) if again else None,
                    resume_arch=options.model.arch if again else None,
                )
            except TrainingInterrupted as stopped:
                raise RunError(
                    f"the bakeoff stopped during {spec} (step {stopped.step}); "
                    f"the finished architectures are kept in {folder}",
                    f"continue it with: termlm bakeoff --resume {folder}",
                ) from None
        rows.append(_row(spec, result))
        rows.sort(key=_rank)
        if on_row is not None:
            on_row(list(rows))
    return rows


def _row(spec: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "arch": spec,
        "val_loss": result["val_loss"],
        "val_bpc": result["val_bpc"],
        "val_ppl": result["val_ppl"],
        "val_tokens": result.get("val_tokens"),
        "params": result["params"],
        "train_tokens_per_s": result["train_tokens_per_s"],
        "steps": result["steps"],
        "seconds": result["train_seconds"],
        "val_share": result.get("val_share"),
        "run_dir": result["run_dir"],
    }


def _rank(row: dict[str, Any]) -> float:
    return float(row["val_bpc"] if row["val_bpc"] is not None else row["val_loss"])


def print_leaderboard(rows: list[dict[str, Any]], *, stderr: bool = False) -> None:
    sizes = {r.get("val_tokens") for r in rows}
    tokens = next(iter(sizes)) if len(sizes) == 1 else None
    title = "bakeoff, best first" + (f" (validation: the same {tokens:,} tokens)" if tokens else "")
    table = Table(title=title)
    columns = ["arch", "val loss", "bits/char", "ppl", "params", "tok/s", "steps", "val %"]
    if len(sizes) > 1:
        columns.append("val tokens")
    for column in columns:
        table.add_column(
            column, justify="left" if column == "arch" else "right", no_wrap=column == "arch"
        )
    table.caption = "val loss in nats/token; tok/s: training tokens per second, validation excluded"
    for row in rows:
        share = row.get("val_share")
        table.add_row(
            Text(row["arch"]),
            f"{row['val_loss']:.4f}",
            f"{row['val_bpc']:.3f}" if row["val_bpc"] is not None else "-",
            f"{row['val_ppl']:.2f}",
            f"{row['params']:,}",
            f"{row['train_tokens_per_s']:,.0f}",
            str(row["steps"]),
            f"{share:.1%}" if isinstance(share, float) else "-",
            *([f"{row.get('val_tokens') or 0:,}"] if len(sizes) > 1 else []),
        )
    Console(stderr=stderr).print(table)
