"""Quality at a fixed budget: termlm's char defaults beside nanoGPT's CPU recipe for tinyshakespeare,
then every architecture under the same wall-clock budget (the bakeoff), in one run.

    python benchmarks/train_quality.py path/to/tinyshakespeare.txt --minutes 2.5 --threads 1

nanoGPT's CPU recipe (a 4-layer, 128-wide Transformer, block 64, batch 12, 2000 iterations,
lr 1e-3, no dropout) is expressed with termlm's own transformer, so both rows run here, in the
same process and conditions. --minutes caps every row, the recipe's too: it stops at its 2000
iterations or at the budget, whichever comes first (the table says which). Prints a table, and JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from termlm.training.bakeoff import run_bakeoff
from termlm.training.loop import train
from termlm.training.options import build_options


def nanogpt_cpu_recipe(corpus: str, threads: int, out: str, minutes: float) -> dict[str, Any]:
    options = build_options(
        corpus=corpus,
        level="char",
        arch="transformer",
        layers=4,
        hidden=128,
        embed=128,
        heads=4,
        context=64,
        batch_size=12,
        max_steps=2000,
        minutes=minutes,
        lr=1e-3,
        dropout=0.0,
        threads=threads,
        out=out,
        name="nanogpt-cpu-recipe",
        command="nanoGPT CPU recipe in termlm",
    )
    options.min_lr_ratio = 0.1
    options.warmup = 0.05
    return train(options, show_progress=False)


def termlm_defaults(corpus: str, minutes: float, threads: int, out: str) -> dict[str, Any]:
    options = build_options(
        corpus=corpus,
        level="char",
        arch=None,
        minutes=minutes,
        threads=threads,
        out=out,
        name="termlm-char-defaults",
        command=f"termlm train CORPUS --level char --minutes {minutes} --threads {threads}",
    )
    return train(options, show_progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus")
    parser.add_argument("--minutes", type=float, default=2.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/bench-quality")
    parser.add_argument("--skip-bakeoff", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for label, run in (
        (
            "termlm char defaults",
            lambda: termlm_defaults(args.corpus, args.minutes, args.threads, args.out),
        ),
        (
            f"nanoGPT CPU recipe (2000 iters or {args.minutes} min)",
            lambda: nanogpt_cpu_recipe(args.corpus, args.threads, args.out, args.minutes),
        ),
    ):
        print(f"running: {label}", file=sys.stderr)
        result = run()
        rows.append(
            {
                "run": label,
                "val_loss": result["val_loss"],
                "params": result["params"],
                "seconds": result["train_seconds"],
                "tokens_per_s": result["train_tokens_per_s"],
                "steps": result["steps"],
                "stop_reason": result["stop_reason"],
            }
        )
    bakeoff: list[dict[str, Any]] = []
    if not args.skip_bakeoff:
        bakeoff = run_bakeoff(
            args.corpus,
            level="char",
            minutes=args.minutes,
            params=None,
            archs=["rnn", "lstm", "gru", "attention", "transformer", "lstm-bi"],
            threads=args.threads,
            seed=1337,
            out=args.out + "/bakeoff",
            show_progress=False,
        )
    if args.json:
        print(json.dumps({"fixed_budget": rows, "bakeoff": bakeoff}, indent=2))
        return
    print(f"load average: {os.getloadavg()}")
    print("| run | val loss (nats/char) | params | train seconds | train tok/s | steps | stop |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['val_loss']:.3f} | {r['params']:,} | {r['seconds']:.0f} | {r['tokens_per_s']:,.0f} | {r['steps']} | {r['stop_reason']} |"
        )
    if bakeoff:
        print()
        print("| arch | val loss (nats/char) | bits/char | params | train tok/s | steps |")
        print("|---|---|---|---|---|---|")
        for r in bakeoff:
            print(
                f"| {r['arch']} | {r['val_loss']:.3f} | {r['val_bpc']:.3f} | {r['params']:,} | {r['train_tokens_per_s']:,.0f} | {r['steps']} |"
            )


if __name__ == "__main__":
    main()
