"""Peak memory and time of `termlm train CORPUS --max-steps 20` on corpora of growing size.

Usage:
    python benchmarks/big_corpus.py SOURCE.txt [--sizes 100,1000,3000] [--levels char,bpe]
        [--bpe-sizes 100] [--tmp DIR] [--steps 20]
    e.g. python benchmarks/big_corpus.py tinyshakespeare.txt --tmp /var/tmp

For each size (MB) the script writes a corpus by repeating SOURCE into a temporary folder under
--tmp (checking there is room for it and its token files), then, for each level, trains twice
with a fixed small model and its own cache folder: the first run scans, fits and tokenizes the
corpus into a token file; the second reuses it. Each run is a child process: its peak resident
memory is the child's own (wait4); its times are wall-clock seconds from its start to the events
of `termlm train --events` that say the plan is made (ready: the corpus read, fitted and
tokenized, the model built) and that the first step is done (first step), and to its end. The
child runs under `python -X importtime`, and the torch column is the cumulative import time of
the `torch` package it reports: the part of the time to the first step that is torch's import.
Everything written is deleted at the end.
Goal: peak memory within 300 MB of the smallest corpus' at every size; the second run at its
first step within seconds. The runs are one after another (--threads 1); the load average is
printed with each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MB = 1 << 20
MODEL = [
    "--arch",
    "lstm",
    "--embed",
    "32",
    "--hidden",
    "128",
    "--context",
    "64",
    "--batch-size",
    "16",
]
# one validation, at the end (the default is 10 in a run: minutes of validation for 20 steps)
EVAL = ["--eval-every", "20"]


def make_corpus(source: Path, path: Path, megabytes: int) -> None:
    """SOURCE repeated until the file has `megabytes` MiB (cut at the end of a copy)."""
    text = source.read_bytes()
    target = megabytes * MB
    with open(path, "wb") as handle:
        written = 0
        while written < target:
            part = text[: target - written]
            handle.write(part)
            written += len(part)


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def torch_import_seconds(stderr_lines: list[str]) -> float:
    """Cumulative import time of the `torch` package, from `python -X importtime` lines."""
    for line in stderr_lines:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == "torch" and line.startswith("import time:"):
            return int(parts[1]) / 1e6
    return float("nan")


def run_train(corpus: Path, level: str, out: Path, name: str, steps: int, cache: Path) -> dict:
    """One `termlm train` in a child process, timed by its event stream: `setup` (the corpus is
    read and tokenized, the model built: ready) and the first `progress` (after the first step)."""
    command = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "termlm",
        "train",
        str(corpus),
        "--level",
        level,
        "--max-steps",
        str(steps),
        "--threads",
        "1",
        "--out",
        str(out),
        "--name",
        name,
        "--no-plot",
        "--events",
        *MODEL,
        *EVAL,
    ]
    env = {**os.environ, "TERMLM_CACHE_DIR": str(cache), "RAYON_NUM_THREADS": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    marks: dict[str, float] = {}
    errors: list[str] = []

    def watch_events() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line).get("event")
                if event in ("setup", "progress") and event not in marks:
                    marks[event] = time.perf_counter() - start

    def watch_errors() -> None:
        assert process.stderr is not None
        errors.extend(line.rstrip() for line in process.stderr)

    readers = [threading.Thread(target=watch_events), threading.Thread(target=watch_errors)]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    total = time.perf_counter() - start
    for reader in readers:
        reader.join()
    if status != 0:
        print("\n".join(line for line in errors if not line.startswith("import time:"))[-3000:])
        raise SystemExit(f"termlm train failed on {corpus} ({level})")
    return {
        "peak_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "torch_s": torch_import_seconds(errors),
        "ready_s": marks.get("setup", float("nan")),
        "first_step_s": marks.get("progress", float("nan")),
        "total_s": total,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--sizes", default="100,1000,3000", help="corpus sizes in MiB")
    parser.add_argument("--levels", default="char,bpe")
    parser.add_argument("--bpe-sizes", default=None, help="sizes for bpe (default: --sizes)")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    bpe_sizes = {int(s) for s in args.bpe_sizes.split(",")} if args.bpe_sizes else set(sizes)
    levels = args.levels.split(",")
    work = Path(tempfile.mkdtemp(prefix="termlm-big-", dir=args.tmp))
    print(f"load average at start {os.getloadavg()}; clock: wall seconds; runs one at a time")
    print(f"model: {' '.join(MODEL)}; --max-steps {args.steps} {' '.join(EVAL)} --threads 1")
    rows = []
    try:
        for size in sizes:
            need = size * MB * 4  # the corpus, a uint8/uint16 token file per level, headroom
            if free_bytes(work) < need:
                print(f"skip {size} MB: {free_bytes(work) // MB:,} MB free, {need // MB:,} needed")
                continue
            corpus = work / f"corpus-{size}mb.txt"
            make_corpus(args.source, corpus, size)
            for level in levels:
                if level == "bpe" and size not in bpe_sizes:
                    continue
                cache = work / f"cache-{size}-{level}"
                for attempt in ("first", "second"):
                    figures = run_train(
                        corpus, level, work / "runs", f"{size}-{level}-{attempt}", args.steps, cache
                    )
                    token_mb = sum(f.stat().st_size for f in (cache / "tokens").rglob("*.bin")) / MB
                    rows.append((size, level, attempt, figures, token_mb))
                    print(
                        f"{size:>6} MB {level:<4} {attempt:<6} peak {figures['peak_mb']:8.0f} MB  "
                        f"torch import {figures['torch_s']:5.1f} s  "
                        f"ready {figures['ready_s']:7.1f} s  "
                        f"first step {figures['first_step_s']:7.1f} s  "
                        f"total {figures['total_s']:7.1f} s  "
                        f"token file {token_mb:7.0f} MB  load {figures['load']:.1f}",
                        flush=True,
                    )
                shutil.rmtree(cache, ignore_errors=True)
            corpus.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        "| corpus | level | run | peak RSS MB | vs smallest | torch import s | ready s "
        "| first step s | total s | token file MB | load |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base: dict[tuple[str, str], float] = {}
    for size, level, attempt, figures, token_mb in rows:
        base.setdefault((level, attempt), figures["peak_mb"])
        delta = figures["peak_mb"] - base[(level, attempt)]
        print(
            f"| {size} MB | {level} | {attempt} | {figures['peak_mb']:.0f} | {delta:+.0f} | "
            f"{figures['torch_s']:.1f} | {figures['ready_s']:.1f} | "
            f"{figures['first_step_s']:.1f} | {figures['total_s']:.1f} | {token_mb:.0f} | "
            f"{figures['load']:.1f} |"
        )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
