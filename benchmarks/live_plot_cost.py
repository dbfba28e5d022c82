"""The cost of watching: training tokens/s with the live loss plot on and off, side by side.

    python benchmarks/live_plot_cost.py path/to/tinyshakespeare.txt [--steps 300] [--rounds 3]

Trains the same small char model for a fixed number of steps, with many validations (each one
redraws the plot), alternately with the plot on and off, in one process. stderr is taken for a
terminal (TTY_COMPATIBLE, FORCE_COLOR) so the progress bar and the plot are really rendered, and
written to /dev/null. Prints each run's tokens/s and CPU seconds (all threads of the process, the
plot's refresh thread included: less sensitive than wall time to a busy machine), and the median
ratios on/off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_to_null() -> Iterator[None]:
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpus")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--evals", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["TTY_COMPATIBLE"] = "1"
    os.environ["FORCE_COLOR"] = "1"
    os.environ.setdefault("COLUMNS", "100")

    from termlm.training.loop import train
    from termlm.training.options import build_options

    speeds: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            for plot in order:
                options = build_options(
                    corpus=args.corpus,
                    level="char",
                    arch="lstm",
                    embed=32,
                    hidden=64,
                    layers=1,
                    context=64,
                    batch_size=16,
                    max_steps=args.steps,
                    threads=args.threads,
                    out=out,
                    name=f"r{round_}-{'on' if plot else 'off'}",
                )
                options.evals = args.evals
                cpu_start = time.process_time()
                with stderr_to_null():
                    result = train(options, show_progress=True, live_plot=plot)
                cpu[plot].append(time.process_time() - cpu_start)
                speeds[plot].append(result["train_tokens_per_s"])
                print(
                    f"round {round_} plot {'on ' if plot else 'off'}: "
                    f"{result['train_tokens_per_s']:,.0f} tok/s, {cpu[plot][-1]:.2f} CPU s",
                    flush=True,
                )
    ratios = [on / off for on, off in zip(speeds[True], speeds[False], strict=True)]
    cpu_ratios = [on / off for on, off in zip(cpu[True], cpu[False], strict=True)]
    summary = {
        "steps": args.steps,
        "validations": args.evals,
        "tokens_per_s_on": [round(s) for s in speeds[True]],
        "tokens_per_s_off": [round(s) for s in speeds[False]],
        "cpu_seconds_on": [round(s, 2) for s in cpu[True]],
        "cpu_seconds_off": [round(s, 2) for s in cpu[False]],
        "median_tokens_per_s_ratio_on_over_off": round(statistics.median(ratios), 3),
        "median_cpu_seconds_ratio_on_over_off": round(statistics.median(cpu_ratios), 3),
    }
    json.dump(summary, sys.stdout)
    print()


if __name__ == "__main__":
    main()
