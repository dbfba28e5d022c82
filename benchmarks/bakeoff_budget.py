"""Does the bakeoff keep its budget? Every architecture at each budget, in one run.

    python benchmarks/bakeoff_budget.py tinyshakespeare.txt --minutes 0.5,2.5 --threads 1

For each budget per architecture, runs `termlm bakeoff` (by default with `--budget-clock cpu`,
so that each slot is the same compute on a busy machine) and prints, per architecture, the
optimizer steps, the share of its slot spent validating (the goal: under 10%), the training
tokens/s (validation excluded) and the validation loss; then the bakeoff's whole time, on the
budget's clock and on the wall, beside the sum of its slots, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

from termlm.training.bakeoff import run_bakeoff

ARCHS = "rnn,lstm,gru,attention,transformer,lstm-bi"


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--minutes", default="0.5,2.5", help="comma-separated budgets per arch")
    parser.add_argument("--archs", default=ARCHS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget-clock", default="cpu", choices=("cpu", "wall"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    archs = [a for a in args.archs.split(",") if a]
    report: list[dict[str, Any]] = []
    print(
        f"clock: {args.budget_clock}; threads {args.threads}; load average at the start "
        f"{_load()} on {os.cpu_count()} cores",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as out:
        for minutes in (float(m) for m in args.minutes.split(",")):
            start, cpu_start = time.perf_counter(), time.process_time()
            rows = run_bakeoff(
                args.corpus,
                level="char",
                minutes=minutes,
                params=None,
                archs=archs,
                threads=args.threads,
                seed=1337,
                out=out,
                name=f"budget-{minutes:g}",
                show_progress=False,
                budget_clock=args.budget_clock,
            )
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            slots = len(archs) * minutes * 60
            report.append(
                {"minutes": minutes, "wall_seconds": wall, "cpu_seconds": cpu, "rows": rows}
            )
            print(
                f"\n{minutes:g} min per architecture ({args.budget_clock} clock): the bakeoff took "
                f"{cpu:.0f} CPU s ({wall:.0f} s on the wall) for {len(archs)} x "
                f"{minutes * 60:.0f} s = {slots:.0f} s of slots; load average now {_load()}",
                flush=True,
            )
            print(
                "| arch | steps | slot in validation | train tokens/s | val loss | bits/char "
                "| val tokens |"
            )
            print("|---|---|---|---|---|---|---|")
            for row in rows:
                print(
                    f"| {row['arch']} | {row['steps']:,} | {row['val_share']:.1%} | "
                    f"{row['train_tokens_per_s']:,.0f} | {row['val_loss']:.3f} | "
                    f"{row['val_bpc']:.3f} | {row['val_tokens']:,} |",
                    flush=True,
                )
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
