"""Word-level models: the output layer's speed, and today's word defaults against the new ones.

    python benchmarks/word_models.py path/to/tinyshakespeare.txt --minutes 3 --jobs 2

1. Speed, one thread, in this process, each arm for --steps optimizer steps, tokens per CPU
   second (validation excluded): the word LSTM with a full softmax and with the adaptive one
   (same vocabulary, sizes and data); the default word LSTM before and after, each as a share of
   the default char LSTM's tokens/s on the same text.
2. Quality: `termlm train` runs of --minutes CPU minutes each (--budget-clock cpu, --threads 1),
   --jobs at a time: today's word defaults and the new ones, or (--ablate) the new ones and
   the new ones with one piece changed each; (--char-arm) the default char LSTM. The word runs share one tokenisation (lowercase,
   punctuation stripped, 6,000 words) and one split (the last 10% of the characters), so their
   perplexities compare; bits per character put word and char models on the same validation
   characters. A word model predicts the lowercased words only (no punctuation, case or
   spacing), a char model every character: the word figure is a lower bound for the same text.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# Today's word defaults (before the adaptive softmax and the regularisation).
TODAY = ["--softmax", "full", "--context", "32", "--dropout", "0.3"]
TODAY_NO_REG = ["--embed-dropout", "0", "--weight-drop", "0", "--no-locked-dropout"]
TODAY_NO_REG += ["--ar", "0", "--tar", "0"]
# Each piece of the new defaults set back to today's value, and the two pieces of AWD-LSTM
# that the defaults leave off (they cost perplexity at a default run's length) turned on: the
# --ablate arms.
ABLATIONS: dict[str, list[str]] = {
    "new, full softmax": ["--softmax", "full"],
    "new, embedding dropout 0.1": ["--embed-dropout", "0.1"],
    "new, weight drop 0.4": ["--weight-drop", "0.4"],
    "new, no locked dropout": ["--no-locked-dropout"],
    "new, no AR/TAR": ["--ar", "0", "--tar", "0"],
    "new, context 32": ["--context", "32"],
    "new, two tails (1000,3000)": ["--cutoffs", "1000,3000"],
    "new, weight average 0.999": ["--ema", "0.999"],
}
# The adaptive softmax's clusters before the default became a head of a 24th and three tails.
TWO_TAILS = [1000, 3000]


# Today's word model: no regularisation beyond dropout.
PLAIN = {"embed_dropout": 0.0, "weight_drop": 0.0, "locked_dropout": False, "ar": 0.0, "tar": 0.0}


def speed_arm(
    corpus: str, level: str, steps: int, out: str, word: dict[str, Any] | None = None, **given: Any
) -> float:
    """Training tokens per CPU second of one arm, on one thread."""
    from termlm.training.loop import train
    from termlm.training.options import build_options

    options = build_options(
        corpus=corpus,
        level=level,
        arch="lstm",
        max_steps=steps,
        threads=1,
        budget_clock="cpu",
        out=out,
        name=f"speed-{level}-{time.time_ns()}",
        word=word,
        eval_tokens=2000,
        **given,
    )
    options.evals = 1
    options.final_eval = False
    result = train(options, show_progress=False, live_plot=False)
    return float(result["train_tokens_per_s"])


def train_arm(corpus: str, name: str, args_: list[str], minutes: float, out: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "termlm",
        "train",
        corpus,
        "--out",
        out,
        "--name",
        name.replace(" ", "_").replace(",", "").replace("/", "-"),
        "--threads",
        "1",
        "--budget-clock",
        "cpu",
        "--minutes",
        str(minutes),
        "--quiet",
        "--json",
        "--patience",
        "0",
        "--no-plot",
        *args_,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"arm": name, "error": done.stderr.strip()[-300:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"done: {name}: val_loss {result['val_loss']:.4f}", flush=True)
    return {"arm": name, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpus")
    parser.add_argument("--steps", type=int, default=40, help="speed: steps per arm")
    parser.add_argument("--minutes", type=float, default=3.0, help="quality: CPU minutes per arm")
    parser.add_argument("--jobs", type=int, default=2, help="quality: arms run at once")
    parser.add_argument(
        "--ablate",
        action="store_true",
        help="quality: the new defaults less one piece per arm (instead of today's defaults)",
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--char-arm", action="store_true", help="quality: a char LSTM arm too")
    parser.add_argument("--out", default=None, help="run folders (default: a temporary folder)")
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="quality: only the arms whose names hold one of these words (and the defaults)",
    )
    parser.add_argument("--seed", type=int, default=None, help="quality: every arm's --seed")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="word-models-")
    print(f"load average at start: {os.getloadavg()}; runs in {out}", flush=True)

    if not args.skip_speed:
        import torch

        torch.set_num_threads(1)
        same = {"context": 32, "dropout": 0.3}
        full = speed_arm(args.corpus, "word", args.steps, out, {**PLAIN, "softmax": "full"}, **same)
        adaptive = speed_arm(
            args.corpus, "word", args.steps, out, {**PLAIN, "softmax": "adaptive"}, **same
        )
        two_tails = speed_arm(args.corpus, "word", args.steps, out, {"cutoffs": TWO_TAILS})
        new_word = speed_arm(args.corpus, "word", args.steps, out)
        char = speed_arm(args.corpus, "char", args.steps, out)
        print("\n## Training speed (one thread, tokens per CPU second, validation excluded)\n")
        print("| arm | tokens/s | share of the default char LSTM |")
        print("|---|---:|---:|")
        for label, value in (
            ("word LSTM, full softmax (today's default)", full),
            ("word LSTM, adaptive softmax (same vocabulary and sizes)", adaptive),
            ("word LSTM, new defaults, head of a sixth and two tails (1000,3000)", two_tails),
            ("word LSTM, new defaults (head of a 24th, three tails)", new_word),
            ("char LSTM, defaults", char),
        ):
            print(f"| {label} | {value:,.0f} | {value / char:.1%} |")
        print(
            f"\nadaptive / full softmax: {adaptive / full:.2f}x; share of the char LSTM's "
            f"tokens/s: {full / char:.1%} today, {new_word / char:.1%} with the new defaults "
            f"({new_word / full:.2f}x; three tails / two: {new_word / two_tails:.2f}x); "
            f"load {os.getloadavg()}",
            flush=True,
        )

    if not args.skip_quality:
        arms: list[tuple[str, list[str]]] = [("new word defaults", ["--level", "word"])]
        if args.ablate:  # the pieces of the new defaults, each against all of them
            arms += [(name, ["--level", "word", *extra]) for name, extra in ABLATIONS.items()]
        else:
            arms.insert(0, ("today's word defaults", ["--level", "word", *TODAY, *TODAY_NO_REG]))
        if args.char_arm:
            arms.append(("char defaults", ["--level", "char"]))
        if args.only:
            arms = [
                arm
                for arm in arms
                if arm[0] == "new word defaults" or any(word in arm[0] for word in args.only)
            ]
        if args.seed is not None:
            arms = [(name, [*extra, "--seed", str(args.seed)]) for name, extra in arms]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            rows = list(
                pool.map(
                    lambda arm: train_arm(args.corpus, arm[0], arm[1], args.minutes, out), arms
                )
            )
        print(
            f"\n## Validation after {args.minutes:g} CPU minutes each (--budget-clock cpu, "
            f"--threads 1, {args.jobs} at a time; all validation tokens)\n"
        )
        print("| arm | val ppl | bits/char | epochs | tokens/s | params |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in rows:
            if "error" in row:
                print(f"| {row['arm']} | failed: {row['error']} | | | | |")
                continue
            ppl = math.exp(min(row["val_loss"], 50))
            print(
                f"| {row['arm']} | {ppl:,.1f} | {row['val_bpc']:.3f} | {row['epochs']:.1f} | "
                f"{row['train_tokens_per_s']:,.0f} | {row['params']:,} |"
            )
        print(
            "\nword rows predict the lowercased words of the last 10% of the text (punctuation, "
            "case and spacing not modelled); the char row predicts every character of it. "
            f"load at end: {os.getloadavg()}"
        )
        Path(out, "word_models.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
