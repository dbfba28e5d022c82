"""Training speed on one thread and on two, and the tutorial recipe's wall time.

    python benchmarks/train_speed.py path/to/tinyshakespeare.txt

Trains the char defaults for a fixed number of steps at 1 and 2 threads (tokens/s side by side),
then times `termlm train --recipe tutorial` as a whole (the Keras original took 10.3 s here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from termlm.training.loop import train
from termlm.training.options import build_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpus")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default="runs/bench-speed")
    args = parser.parse_args()
    rows = []
    for threads in (1, 2):
        options = build_options(
            corpus=args.corpus,
            level="char",
            arch=None,
            max_steps=args.steps,
            threads=threads,
            out=args.out,
            name=f"threads-{threads}-{int(time.time())}",
        )
        options.evals = 1
        result = train(options, show_progress=False)
        rows.append({"threads": threads, "train_tokens_per_s": round(result["train_tokens_per_s"])})
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "termlm",
            "train",
            "--recipe",
            "tutorial",
            "--json",
            "--quiet",
            "--out",
            args.out,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    tutorial = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        json.dumps(
            {
                "threads": rows,
                "tutorial": {
                    "seconds": tutorial["seconds"],
                    "process_seconds": round(wall, 2),
                    "train_accuracy": tutorial["train_accuracy"],
                    "sample": tutorial["sample"],
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
