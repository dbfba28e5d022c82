"""The generation loop's speed against the model's own step rate, side by side, one thread.

    python benchmarks/generation_speed.py                      # bundled char model, n = 500 2000 8000
    python benchmarks/generation_speed.py MODEL.onnx -n 500 2000 --strategies greedy beam --json

The same table as ``termlm bench MODEL --strategies``; what each column means is in
``termlm/decoding/speed.py``. Medians of ``--repeat`` interleaved runs; ``--clock cpu`` (the
default on one thread) counts this thread's CPU time, so other work on the machine weighs less.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from termlm.decoding import build_plugin_manager
from termlm.decoding.speed import (
    CLOCKS,
    HEADER,
    STRATEGIES,
    format_row,
    load_line,
    measure,
    pick_clock,
)
from termlm.runtime.onnx_model import load_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", nargs="?", default=str(ROOT / "exported" / "shakespeare-char.onnx")
    )
    parser.add_argument("-n", "--lengths", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    parser.add_argument(
        "--alternatives", type=int, default=0, help="alternatives per token the listener wants"
    )
    parser.add_argument(
        "--live-beams", action="store_true", help="the listener wants the live beams (the chat)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=CLOCKS, default=None, help="cpu (one thread) or wall")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    args = parser.parse_args()
    clock = pick_clock(args.clock, args.threads)
    model = load_model(args.model, threads=args.threads)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    wants = f"{args.alternatives} alternatives, live beams {'on' if args.live_beams else 'off'}"
    print(
        f"{model.name}, {args.threads} thread(s), median of {args.repeat}, {clock} clock, {wants}"
    )
    print(load_line() + " (before)")
    print(HEADER, flush=True)
    rows = []
    for row in measure(
        model,
        model.tokenizer,
        args.strategies,
        args.lengths,
        registry=registry,
        repeat=args.repeat,
        alternatives=args.alternatives,
        clock=clock,
        live_beams=args.live_beams,
    ):
        rows.append(row)
        print(format_row(row), flush=True)
    print(load_line() + " (after)")
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))


if __name__ == "__main__":
    main()
