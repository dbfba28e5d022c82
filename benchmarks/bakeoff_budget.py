"""Does the bakeoff keep its budget? Every architecture at each budget, in one run.

    python benchmarks/bakeoff_budget.py tinyshakespeare.txt --minutes 0.5,2.5 --threads 1

For each budget per architecture, runs `termlm bakeoff` and prints, per architecture, the
optimizer steps, the share of its slot spent validating (the goal: under 10%), the training
tokens/s (validation excluded) and the validation loss; then the bakeoff's whole wall time beside
the sum of its slots.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

from termlm.training.bakeoff import run_bakeoff

ARCHS = "rnn,lstm,gru,attention,transformer,lstm-bi"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--minutes", default="0.5,2.5", help="comma-separated budgets per arch")
    parser.add_argument("--archs", default=ARCHS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    archs = [a for a in args.archs.split(",") if a]
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as out:
        for minutes in (float(m) for m in args.minutes.split(",")):
            start = time.perf_counter()
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
            )
            wall = time.perf_counter() - start
            report.append({"minutes": minutes, "wall_seconds": wall, "rows": rows})
            print(
                f"\n{minutes:g} min per architecture: the bakeoff took {wall:.0f} s "
                f"for {len(archs)} x {minutes * 60:.0f} s = {len(archs) * minutes * 60:.0f} s of slots "
                "(validation tokens per architecture in the last column)",
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
