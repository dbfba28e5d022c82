"""Mutate real model files and check that termlm refuses each one cleanly or runs it.

    python scripts/fuzz_model_files.py exported/*.onnx --cases 2000 --seed 1

Each case takes one of the given files, damages it (flipped bytes, a truncation, a splice of
another part of a file, inserted or deleted bytes), writes it to a scratch folder, and loads it
the way `termlm generate` does: the model file reader, onnxruntime, the tokenizer, then a few
greedy steps through the generation loop. Allowed outcomes: "refused" (a TermlmError),
"ran" (the steps ran), "step_error" (the generation ended with stop_reason "error", which the CLI
prints as one line). Anything else (another exception, a crash of the process) is a failure:
the exit code is 1 (or the crash's), and stderr names the case (file, kind, seed) before it runs.
Prints one JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("flip", "truncate", "splice", "insert", "delete")


def _position(rng: np.random.Generator, size: int) -> int:
    """Half uniform (mostly weights), half near the ends (graph structure, metadata)."""
    roll = rng.random()
    if roll < 0.5:
        return int(rng.integers(0, size))
    if roll < 0.75:
        return int(rng.integers(0, min(size, 8192)))
    return int(rng.integers(max(0, size - 65536), size))


def mutate(data: bytes, kind: str, rng: np.random.Generator, other: bytes) -> bytes:
    """One damaged copy of ``data``."""
    buf = bytearray(data)
    size = len(buf)
    if kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            pos = _position(rng, size)
            buf[pos] = int(rng.integers(0, 256)) if rng.random() < 0.5 else buf[pos] ^ 0xFF
        return bytes(buf)
    if kind == "truncate":
        return bytes(buf[: int(rng.integers(0, size))])
    if kind == "splice":  # a chunk of this or another model file pasted over another place
        length = int(rng.integers(1, 4097))
        start = int(rng.integers(0, max(1, len(other) - length)))
        chunk = other[start : start + length]
        pos = _position(rng, size)
        return bytes(buf[:pos] + chunk + buf[pos + len(chunk) :])
    if kind == "insert":
        pos = _position(rng, size)
        return bytes(buf[:pos] + rng.bytes(int(rng.integers(1, 17))) + buf[pos:])
    if kind == "delete":
        pos = _position(rng, size)
        return bytes(buf[:pos] + buf[pos + int(rng.integers(1, 17)) :])
    raise ValueError(kind)


def check(path: Path, registry: Any, steps: int = 3) -> str:
    """How termlm takes one file: "refused", "ran" or "step_error" (anything else raises)."""
    from termlm.decoding import generate
    from termlm.decoding.events import DoneEvent
    from termlm.errors import TermlmError
    from termlm.runtime.onnx_model import load_model

    try:
        model = load_model(path)
        tokenizer = model.tokenizer
        events = list(
            generate(
                model, tokenizer, [], registry=registry, strategy="greedy", max_new_tokens=steps
            )
        )
    except TermlmError as exc:
        assert exc.message, "a refusal without a message"
        return "refused"
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return "step_error" if done.result.stop_reason == "error" else "ran"


def fuzz(files: list[Path], cases: int, seed: int, *, log: Any = sys.stderr) -> dict[str, Any]:
    from termlm.decoding import build_plugin_manager

    registry = build_plugin_manager(entry_points=False, user_dir=False)
    sources = [path.read_bytes() for path in files]
    rng = np.random.default_rng(seed)
    outcomes: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    failures: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="termlm-fuzz-") as folder:
        target = Path(folder) / "model.onnx"
        for case in range(cases):
            which = case % len(files)
            kind = KINDS[int(rng.integers(0, len(KINDS)))]
            other = sources[int(rng.integers(0, len(sources)))]
            data = mutate(sources[which], kind, rng, other)
            target.write_bytes(data)
            print(f"case {case}: {files[which].name} {kind} (seed {seed})", file=log, flush=True)
            try:
                outcome = check(target, registry)
            except Exception as exc:  # the failures this fuzzer looks for
                outcome = "unexpected"
                failures.append(f"case {case} ({files[which].name}, {kind}): {exc!r}"[:500])
            outcomes[outcome] += 1
            by_kind[kind][outcome] += 1
    return {
        "files": [path.name for path in files],
        "cases": cases,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "outcomes": dict(outcomes),
        "by_kind": {kind: dict(counts) for kind, counts in by_kind.items()},
        "failures": failures[:20],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="exported .onnx files to damage")
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="do not name each case on stderr")
    args = parser.parse_args(argv)
    log = io.StringIO() if args.quiet else sys.stderr
    summary = fuzz(args.files, args.cases, args.seed, log=log)
    print(json.dumps(summary))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
