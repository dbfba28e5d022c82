"""Fine-tuning against training from scratch, on small texts, under the same budget, in one run.

    python benchmarks/finetune.py CORPUS [CORPUS ...] --minutes 2 --threads 1

For each corpus (50 to 300 KB of text that is not Shakespeare), four runs of the same
wall-clock budget on the same thread count, one after the other:

- ``scratch``: `termlm train CORPUS` with the char defaults (what a new user gets);
- ``scratch, source's size``: the source's architecture and sizes, from random weights;
- ``init-from``: `termlm train CORPUS --init-from SOURCE` (its fine-tuning defaults);
- ``init-from, frozen``: the same with ``--freeze-embeddings``.

Reported per run: the validation loss at the end of the budget (the last validation), the
best validation loss reached (the run's result, on the whole validation text), steps, why it
stopped, and the greedy sample of the best weights. Prints a Markdown table; --json writes
everything to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from termlm.training.loop import train
from termlm.training.options import build_options

VARIANTS = ("scratch", "scratch-same-size", "init-from", "init-from-frozen")


def _last_validation(run_dir: str) -> float:
    lines = Path(run_dir, "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return float([r for r in records if "val_loss" in r][-1]["val_loss"])


def run_variant(
    variant: str, corpus: str, source: str, minutes: float, threads: int, out: str
) -> dict[str, Any]:
    common: dict[str, Any] = {
        "corpus": corpus,
        "minutes": minutes,
        "threads": threads,
        "out": out,
        "name": f"{Path(corpus).name}-{variant}",
        "arch": None,
    }
    if variant == "scratch":
        options = build_options(level="char", **common)
    elif variant == "scratch-same-size":
        from termlm.training.init_from import find_source

        config = find_source(source).config
        options = build_options(
            level="char",
            **{**common, "arch": config.arch},
            embed=config.embed,
            hidden=config.hidden,
            layers=config.layers,
            context=config.context,
            dropout=config.dropout,
            tie=config.tie,
        )
    else:
        options = build_options(
            level=None,
            init_from=source,
            freeze_embeddings=variant == "init-from-frozen",
            **common,
        )
    options.command = f"benchmarks/finetune.py {variant}"
    result = train(options, show_progress=False)
    return {
        "variant": variant,
        "corpus": Path(corpus).name,
        "corpus_bytes": Path(corpus).stat().st_size,
        "final_val_loss": _last_validation(result["run_dir"]),
        "best_val_loss": result["val_loss"],
        "best_val_bpc": result["val_bpc"],
        "steps": result["steps"],
        "train_seconds": result["train_seconds"],
        "stop_reason": result["stop_reason"],
        "params": result["params"],
        "lr": options.lr,
        "added_tokens": len((result.get("init_from") or {}).get("added_tokens", [])),
        "sample": result["sample"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="+", help="Text files (50 to 300 KB each).")
    parser.add_argument("--source", default="shakespeare-char", help="Model to fine-tune.")
    parser.add_argument("--minutes", type=float, default=2.0, help="Budget of every run.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default=None, help="Folder for the runs (default: a temp dir).")
    parser.add_argument("--json", default=None, help="Write every figure and sample here.")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        out = args.out or scratch_dir
        for corpus in args.corpora:
            for variant in variants:
                print(f"{Path(corpus).name}: {variant} ...", file=sys.stderr, flush=True)
                rows.append(
                    run_variant(variant, corpus, args.source, args.minutes, args.threads, out)
                )
    print(
        f"\n{args.minutes:g} minutes per run, {args.threads} thread(s); losses in nats per "
        "character on the last 10% of each text\n"
    )
    print("| corpus | run | val loss at the end | best val loss (bits/char) | steps | stopped |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['corpus']} ({row['corpus_bytes'] // 1000} KB) | {row['variant']} | "
            f"{row['final_val_loss']:.3f} | {row['best_val_loss']:.3f} "
            f"({row['best_val_bpc']:.2f}) | {row['steps']} | {row['stop_reason']} |"
        )
    for row in rows:
        print(f"\n{row['corpus']}, {row['variant']}:\n{row['sample']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
