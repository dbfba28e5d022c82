"""The runtime's figures for one model, side by side in one run: speed (one step per token,
prefill, batch and beam steps, the tutorial's window re-reading, PyTorch eager), int8 against
fp32 (speed, size, validation loss), cold start of `termlm generate` and its peak memory.

    python benchmarks/runtime_figures.py exported/shakespeare-char.onnx \\
        --corpus path/to/tinyshakespeare.txt

Needs only the model file (and the train extra, for the PyTorch and int8 rows): PyTorch eager
runs the file's own weights rebuilt in PyTorch (--run RUN: the training run's model instead),
and the int8 rows quantize the file here as `termlm export --quantize int8` does (--int8 FILE:
use that file instead). --corpus adds validation losses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

KERAS_SECONDS_PER_WORD = 0.049  # the tutorial's Keras loop, measured on this kind of machine

PEAK_RSS = """
import resource, sys
sys.argv = ["termlm", *{args!r}]
from termlm.cli.app import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("PEAK_KB=%d\\n" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def quantized_copy(model: Path) -> str | None:
    """An int8 copy of a float model file, in a temporary folder (None without the train extra)."""
    import tempfile

    try:
        import onnx

        from termlm.export.metadata import META_KEY
        from termlm.export.quantize import quantize_int8
    except ImportError:
        return None
    proto = onnx.load_from_string(quantize_int8(model.read_bytes()))
    float_proto = onnx.load(str(model), load_external_data=False)
    meta = json.loads(next(e.value for e in float_proto.metadata_props if e.key == META_KEY))
    meta["quantized"] = "int8"
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta, separators=(",", ":"))
    out = Path(tempfile.mkdtemp()) / f"{model.stem}-int8.onnx"
    out.write_bytes(proto.SerializeToString())
    return str(out)


def termlm(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "termlm", *args], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def cold_start(model: str, runs: int = 7) -> dict[str, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "termlm",
                "generate",
                model,
                "--prompt",
                "ROMEO:",
                "-n",
                "20",
                "--seed",
                "1",
            ],
            capture_output=True,
            check=True,
        )
        times.append(time.perf_counter() - started)
    return {"min_s": min(times), "median_s": statistics.median(times)}


def peak_memory_mb(model: str) -> float:
    args = ["generate", model, "--prompt", "ROMEO:", "-n", "200", "--seed", "1"]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS.format(args=args)],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("PEAK_KB="))
    return int(line.split("=")[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("--run", help="the training run of the model (adds PyTorch eager speed)")
    parser.add_argument("--int8", help="the int8 export of the same run")
    parser.add_argument("--corpus", help="the corpus (adds validation losses)")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()

    figures: dict[str, Any] = {}
    bench_args = ["bench", args.model, "--json", "--threads", args.threads]
    # PyTorch eager: the training run's model, or else the file's own weights rebuilt in PyTorch
    bench_args += ["--run", args.run] if args.run else ["--torch"]
    fp32 = termlm(*bench_args)
    figures["fp32"] = fp32
    figures["fp32_size_mb"] = Path(args.model).stat().st_size / 1e6
    if fp32.get("torch_tokens_per_s"):
        figures["speedup_vs_torch_eager"] = fp32["tokens_per_s"] / fp32["torch_tokens_per_s"]
    figures["speedup_vs_keras_tutorial_loop"] = fp32["tokens_per_s"] * KERAS_SECONDS_PER_WORD
    figures["speedup_vs_window_rereading"] = fp32["tokens_per_s"] / fp32["window_tokens_per_s"]
    if not args.int8:
        args.int8 = quantized_copy(Path(args.model))
    if args.int8:
        int8 = termlm("bench", args.int8, "--json", "--threads", args.threads)
        figures["int8"] = int8
        figures["int8_size_mb"] = Path(args.int8).stat().st_size / 1e6
        figures["int8_speedup"] = int8["tokens_per_s"] / fp32["tokens_per_s"]
    if args.corpus:
        figures["fp32_val"] = termlm("eval", args.model, args.corpus, "--split", "val", "--json")
        if args.int8:
            figures["int8_val"] = termlm("eval", args.int8, args.corpus, "--split", "val", "--json")
            figures["int8_val_loss_change"] = (
                figures["int8_val"]["loss"] - figures["fp32_val"]["loss"]
            )
    figures["cold_start_generate_20"] = cold_start(args.model)
    figures["peak_memory_generate_mb"] = peak_memory_mb(args.model)
    figures["load_average"] = os.getloadavg()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
