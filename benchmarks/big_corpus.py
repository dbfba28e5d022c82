"""Peak memory and time of `termlm train CORPUS --max-steps 20` on corpora of growing size.

Usage:
    python benchmarks/big_corpus.py SOURCE.txt [--sizes 100,1000,3000] [--levels char,bpe]
        [--bpe-sizes 100] [--tmp DIR] [--steps 20]
    e.g. python benchmarks/big_corpus.py tinyshakespeare.txt --tmp /var/tmp

For each size (MB) the script writes a corpus by repeating SOURCE into a temporary folder under
--tmp (checking there is room for it and its token files), then, for each level, trains twice
with a fixed small model and its own cache folder: the first run scans, fits and tokenizes the
corpus into a token file; the second reuses it. Each run is a child process: its peak resident
memory is the child's own (wait4), its times are wall-clock seconds from start to the line that
announces training (ready) and to the end. Everything written is deleted at the end.
Goal: peak memory within 300 MB of the smallest corpus' at every size; the second run ready in
seconds. The runs are one after another (--threads 1); the load average is printed with each.
"""

from __future__ import annotations

import argparse
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


def run_train(corpus: Path, level: str, out: Path, name: str, steps: int, cache: Path) -> dict:
    command = [
        sys.executable,
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
        *MODEL,
    ]
    env = {**os.environ, "TERMLM_CACHE_DIR": str(cache), "RAYON_NUM_THREADS": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    ready: list[float] = []
    lines: list[str] = []

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip())
            if not ready and "steps per epoch" in line:
                ready.append(time.perf_counter() - start)

    reader = threading.Thread(target=watch)
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    total = time.perf_counter() - start
    reader.join()
    if status != 0:
        print("\n".join(lines[-15:]), file=sys.stderr)
        raise SystemExit(f"termlm train failed on {corpus} ({level})")
    return {
        "peak_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "ready_s": ready[0] if ready else float("nan"),
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
    print(f"model: {' '.join(MODEL)}; --max-steps {args.steps} --threads 1")
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
                        f"ready {figures['ready_s']:7.1f} s  total {figures['total_s']:7.1f} s  "
                        f"token file {token_mb:7.0f} MB  load {figures['load']:.1f}",
                        flush=True,
                    )
                shutil.rmtree(cache, ignore_errors=True)
            corpus.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        "| corpus | level | run | peak RSS MB | vs smallest | ready s | total s | token file MB |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    base: dict[tuple[str, str], float] = {}
    for size, level, attempt, figures, token_mb in rows:
        base.setdefault((level, attempt), figures["peak_mb"])
        delta = figures["peak_mb"] - base[(level, attempt)]
        print(
            f"| {size} MB | {level} | {attempt} | {figures['peak_mb']:.0f} | {delta:+.0f} | "
            f"{figures['ready_s']:.1f} | {figures['total_s']:.1f} | {token_mb:.0f} |"
        )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
