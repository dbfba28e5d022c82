"""Steps in the same wall-clock budget at 1 thread, at every core, and at termlm's default.

    python benchmarks/train_threads.py tinyshakespeare.txt --seconds 20 --rounds 2

The char defaults train for --seconds at each thread count, the counts taken in turn for
--rounds rounds (so a change in the machine's load falls on all of them); prints the steps and
training tokens/s of each run with the 1-minute load average when it started.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from termlm.training.defaults import default_threads
from termlm.training.loop import train
from termlm.training.options import build_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(args.rounds):
            for label in ("1", "all", "default"):
                load = os.getloadavg()[0]
                threads = {"1": 1, "all": cores, "default": default_threads().threads}[label]
                options = build_options(
                    corpus=args.corpus,
                    level="char",
                    arch=None,
                    minutes=args.seconds / 60.0,
                    threads=threads,
                    eval_every=10**9,  # one validation, at the end
                    out=out,
                    name=f"threads-{label}-{round_}",
                )
                options.final_eval = False
                result = train(options, show_progress=False)
                row = {
                    "round": round_,
                    "threads": f"{label} ({threads})",
                    "load": round(load, 1),
                    "steps": result["steps"],
                    "train_tokens_per_s": round(result["train_tokens_per_s"]),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("| round | threads | load at start | steps | train tokens/s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['round']} | {row['threads']} | {row['load']} | {row['steps']:,} | "
            f"{row['train_tokens_per_s']:,} |"
        )


if __name__ == "__main__":
    main()
