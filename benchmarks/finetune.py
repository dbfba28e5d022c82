"""Fine-tuning against training from scratch on small texts, under one budget, side by side.

    python benchmarks/finetune.py CORPUS [CORPUS ...] --minutes 2
    python benchmarks/finetune.py /usr/share/games/fortunes/computers \\
        /usr/lib/python3.11/argparse.py --minutes 1 --arms init-from \\
        --tune lr=2e-3 --tune lr=4e-3 --tune "lr=4e-3 context=64"      # a sweep

For each corpus (50 to 300 KB of text that is not Shakespeare), these arms, each on one
thread and the same budget of CPU seconds (`--budget-clock cpu`: a busy machine slows every arm
alike without shortening its training), run two at a time as concurrent processes:

- ``scratch``: `termlm train CORPUS` with the char defaults (what a new user gets);
- ``scratch-source-size``: the source's architecture and sizes, from random weights;
- ``init-from``: `termlm train CORPUS --init-from SOURCE` with its fine-tuning defaults
  (each ``--tune "KEY=VALUE ..."`` runs one such arm with those training options instead);
- ``init-from-frozen``: the same with ``--freeze-embeddings``.

Reported per run: the validation loss at the end of the budget (the last validation, with the
tokens it read), the best validation loss (the run's result: its best weights on the whole
validation text) in nats and bits per character, steps, why it stopped, and a sample of the
best weights. Prints Markdown tables and the load average; --json writes everything to a file.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ARMS = ("scratch", "scratch-source-size", "init-from", "init-from-frozen")
DEFAULT_ARMS = "scratch,scratch-source-size,init-from"


def _last_validation(run_dir: str) -> tuple[float, int]:
    lines = Path(run_dir, "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    last = [r for r in records if "val_loss" in r][-1]
    return float(last["val_loss"]), int(last["val_tokens"])


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def run_arm(job: dict[str, Any]) -> dict[str, Any]:
    """One training run, in its own process (one thread, the CPU-seconds clock)."""
    from termlm.training.loop import train
    from termlm.training.options import build_options

    arm, corpus, source = job["arm"], job["corpus"], job["source"]
    common: dict[str, Any] = {
        "corpus": corpus,
        "minutes": job["minutes"],
        "threads": 1,
        "budget_clock": "cpu",
        "out": job["out"],
        "name": f"{Path(corpus).name}-{job['label']}",
        "arch": None,
        "seed": job["seed"],
    }
    if arm == "scratch":
        options = build_options(level="char", **common)
    elif arm == "scratch-source-size":
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
        extra = dict(job["set"])
        options = build_options(
            level=None,
            init_from=source,
            freeze_embeddings=arm == "init-from-frozen",
            **common,
            **extra,
        )
    options.command = f"benchmarks/finetune.py {job['label']}"
    result = train(options, show_progress=False, live_plot=False)
    final_loss, final_tokens = _last_validation(result["run_dir"])
    return {
        "arm": job["label"],
        "corpus": Path(corpus).name,
        "corpus_bytes": Path(corpus).stat().st_size,
        "final_val_loss": final_loss,
        "final_val_tokens": final_tokens,
        "best_val_loss": result["val_loss"],
        "best_val_bpc": result["val_bpc"],
        "val_tokens": result["val_tokens"],
        "steps": result["steps"],
        "best_step": result["best_step"],
        "cpu_seconds": result["train_seconds"],
        "stop_reason": result["stop_reason"],
        "params": result["params"],
        "lr": options.lr,
        "batch_size": options.batch_size,
        "context": options.model.context,
        "added_tokens": len((result.get("init_from") or {}).get("added_tokens", [])),
        "sample": result["sample"],
    }


def jobs_for(args: argparse.Namespace) -> list[dict[str, Any]]:
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    tunes: list[dict[str, Any]] = []
    for spec in args.tune or [""]:
        pairs = [item.split("=", 1) for item in spec.replace(",", " ").split()]
        if any(len(pair) != 2 for pair in pairs):
            raise SystemExit(f"--tune {spec!r}: give KEY=VALUE pairs, e.g. 'lr=4e-3 context=64'")
        tunes.append({key.replace("-", "_"): _value(value) for key, value in pairs})
    jobs = []
    # arm by arm, in the order given, over every corpus: the first arms finish first
    for arm in arms:
        for settings in tunes if arm.startswith("init-from") else [{}]:
            for corpus in args.corpora:
                label = " ".join(
                    [
                        arm,
                        *(
                            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in settings.items()
                        ),
                    ]
                )
                jobs.append(
                    {
                        "arm": arm,
                        "label": label,
                        "corpus": corpus,
                        "source": args.source,
                        "minutes": args.minutes,
                        "seed": args.seed,
                        "set": settings,
                        "out": "",
                    }
                )
    return jobs


def print_tables(rows: list[dict[str, Any]], args: argparse.Namespace, loads: list[str]) -> None:
    print(
        f"\n{args.minutes:g} CPU minutes per run (--budget-clock cpu), one thread each, "
        f"{args.jobs} runs at a time; source {args.source}; losses in nats per character on "
        f"the last 10% of each text. Load average (1, 5, 15 min): {' then '.join(loads)}\n"
    )
    print(
        "| corpus | run | val loss at the budget (tokens) | best val loss | bits/char "
        "| steps | lr | batch x context | stopped |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    order = {name: i for i, name in enumerate(Path(c).name for c in args.corpora)}
    rows = sorted(rows, key=lambda row: order.get(row["corpus"], 0))  # stable: arms in order
    for row in rows:
        print(
            f"| {row['corpus']} ({row['corpus_bytes'] // 1000} KB) | {row['arm']} | "
            f"{row['final_val_loss']:.3f} ({row['final_val_tokens']:,}) | "
            f"{row['best_val_loss']:.3f} | {row['best_val_bpc']:.3f} | {row['steps']} | "
            f"{row['lr']:g} | {row['batch_size']} x {row['context']} | {row['stop_reason']} |"
        )
    for row in rows:
        sample = row["sample"].replace("\n", "\n    ")
        print(f"\n{row['corpus']}, {row['arm']}:\n    {sample}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="+", help="Text files (50 to 300 KB each).")
    parser.add_argument("--source", default="shakespeare-char", help="Model to fine-tune.")
    parser.add_argument("--minutes", type=float, default=2.0, help="CPU minutes of every run.")
    parser.add_argument("--arms", default=DEFAULT_ARMS, help=f"Some of: {', '.join(ARMS)}.")
    parser.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="'KEY=VALUE ...'",
        help="One fine-tuning arm with these training options (lr=4e-3 context=64 ...); "
        "repeat for a sweep. Default: one arm with the fine-tuning defaults.",
    )
    parser.add_argument("--jobs", type=int, default=2, help="Runs at a time (processes).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="Folder for the runs (default: a temp dir).")
    parser.add_argument("--json", default=None, help="Write every figure and sample here.")
    args = parser.parse_args(argv)
    jobs = jobs_for(args)
    loads = [" ".join(f"{x:.1f}" for x in os.getloadavg())]
    with tempfile.TemporaryDirectory() as scratch_dir:
        for job in jobs:
            job["out"] = args.out or scratch_dir
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_arm, job) for job in jobs]
            rows = []
            for job, future in zip(jobs, futures, strict=True):
                rows.append(future.result())
                row = rows[-1]
                print(
                    f"{row['corpus']}: {job['label']}: best {row['best_val_loss']:.3f}, "
                    f"at the budget {row['final_val_loss']:.3f}, {row['steps']} steps",
                    file=sys.stderr,
                    flush=True,
                )
                if args.json:  # after every run, so that a stopped benchmark keeps its rows
                    _write_json(args.json, rows)
    loads.append(" ".join(f"{x:.1f}" for x in os.getloadavg()))
    print_tables(rows, args, loads)
    return 0


def _write_json(path: str, rows: list[dict[str, Any]]) -> None:
    from termlm.atomic import atomic_write_text

    atomic_write_text(Path(path), json.dumps(rows, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
