"""Side-by-side runtime speed of several model files (what `termlm bench` measures, per model).

    python benchmarks/bench_runtime.py exported/*.onnx --tokens 200 --threads 1
    python benchmarks/bench_runtime.py MODEL.onnx --threads 1 2 4 --json

One row per (model, threads): tokens/s one token at a time, prefill, the tutorial's window
re-reading, batch/beam step ratios and the memory-bandwidth bound.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from termlm.runtime.bench import run_bench
from termlm.runtime.onnx_model import load_model

COLUMNS = (
    ("model", "model"),
    ("arch", "arch"),
    ("threads", "thr"),
    ("tokens_per_s", "tok/s"),
    ("prefill_tokens_per_s", "prefill/s"),
    ("window_tokens_per_s", "window/s"),
    ("batch4_step_ratio", "batch4"),
    ("beam4_step_ratio", "beam4"),
    ("bound_tokens_per_s", "bound/s"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help=".onnx model files")
    parser.add_argument("--tokens", type=int, default=200, help="tokens timed one at a time")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="thread counts")
    parser.add_argument("--json", action="store_true", help="one JSON list")
    args = parser.parse_args()

    rows = []
    for path in args.models:
        for threads in args.threads:
            rows.append(run_bench(load_model(path, threads=threads), tokens=args.tokens))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    table = [[title for _, title in COLUMNS]]
    table += [[_cell(row.get(key)) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
