"""The cost of training from the chat: `termlm train` alone against the same training run as the
Train view runs it (`--events`, its JSON lines read through a pipe by a TrainJob polled 4 times a
second), both at once.

    python benchmarks/train_view_cost.py path/to/tinyshakespeare.txt [--steps 400] [--rounds 2]

The two arms run CONCURRENTLY (two processes, --threads 1 each), so they see the same load, with
a budget in steps (not time), many validations (each one an event with a sample), and the same
seed. Each arm's training tokens/s is read from its result.json. Prints one line per arm and
round, the median ratio view/alone, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def options(steps: int, evals: int) -> list[str]:
    return [
        *("--level", "char", "--arch", "lstm", "--embed", "32", "--hidden", "64"),
        *("--context", "64", "--batch-size", "16", "--threads", "1", "--seed", "1"),
        *("--max-steps", str(steps), "--eval-every", str(max(steps // evals, 1))),
        *("--patience", "0", "--quiet", "--no-plot"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpus")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--evals", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from termlm.runs.job import JobState, TrainJob
    from termlm.runs.plan import TrainRequest

    print(f"load average before: {os.getloadavg()}")
    alone: list[float] = []
    viewed: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(args.rounds):
            name = f"alone-{round_}"
            plain = subprocess.Popen(
                [
                    *(sys.executable, "-m", "termlm", "train", args.corpus, "--out", out),
                    *("--name", name, *options(args.steps, args.evals)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            request = TrainRequest(
                args.corpus,
                minutes=600,
                out=out,
                name=f"view-{round_}",
                extra=options(args.steps, args.evals),
            )
            job = TrainJob(request)
            job.start()
            events = 0
            while job.running:
                events += len(job.poll())
                time.sleep(0.25)
            plain.wait()
            if job.state is not JobState.FINISHED or plain.returncode != 0:
                raise SystemExit(f"a run failed: {job.problem or plain.returncode}")
            for arm, folder in ((alone, Path(out) / name), (viewed, request.folder)):
                result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
                arm.append(float(result["train_tokens_per_s"]))
            print(
                f"round {round_}: alone {alone[-1]:,.0f} tok/s, "
                f"from the view {viewed[-1]:,.0f} tok/s ({events} events read)",
                flush=True,
            )
    ratios = [v / a for v, a in zip(viewed, alone, strict=True)]
    print(f"median ratio view/alone: {statistics.median(ratios):.3f}")
    print(f"load average after: {os.getloadavg()}")
    print(f"budget: {args.steps} steps per run, concurrent arms, 1 thread each")


if __name__ == "__main__":
    main()
