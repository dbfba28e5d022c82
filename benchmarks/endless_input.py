"""Peak memory and time to the error of `termlm eval` and `termlm train` on endless inputs.

    python benchmarks/endless_input.py [MODEL]

Each case runs in its own process: /dev/zero, and a FIFO fed by `yes` (text that never ends,
read up to TERMLM_MAX_CORPUS_MB, 512 by default). Prints one row per case: exit code, peak RSS
of the termlm process (from its rusage) and the seconds to the error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs one command and prints its peak RSS (children's rusage) and wall time as JSON.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": proc.returncode, "peak_mb": peak_kb / 1024, "seconds": seconds,
                  "error": proc.stderr.strip().splitlines()[:1]}))
"""


def measure(command: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "shakespeare-char"
    yes = shutil.which("yes")
    termlm = [sys.executable, "-m", "termlm"]
    with tempfile.TemporaryDirectory() as tmp:
        fifo = Path(tmp) / "endless.txt"
        os.mkfifo(fifo)
        out = str(Path(tmp) / "runs")
        cases = {
            "eval /dev/zero": [*termlm, "eval", model, "/dev/zero"],
            "train /dev/zero": [*termlm, "train", "/dev/zero", "--out", out, "-q"],
            "eval FIFO fed by yes": [*termlm, "eval", model, str(fifo)],
            "train FIFO fed by yes": [*termlm, "train", str(fifo), "--out", out, "-q"],
        }
        print(f"{'case':24} {'exit':>4} {'peak RSS':>10} {'to error':>9}  message")
        for name, command in cases.items():
            writer = None
            if "FIFO" in name:
                assert yes, "needs the yes command"
                writer = subprocess.Popen(
                    f"exec {yes} > {fifo}", shell=True, stderr=subprocess.DEVNULL
                )
            try:
                row = measure(command)
            finally:
                if writer is not None:
                    writer.kill()
                    writer.wait()
            error = row["error"][0] if row["error"] else ""  # type: ignore[index]
            print(
                f"{name:24} {row['rc']:>4} {row['peak_mb']:>7.0f} MB {row['seconds']:>7.2f} s  "
                f"{str(error)[:70]}"
            )


if __name__ == "__main__":
    main()
