"""Each training default against at least two alternatives, under the same budget, per corpus.

    python benchmarks/train_defaults.py tinyshakespeare.txt other.txt --minutes 0.5 --threads 1
    python benchmarks/train_defaults.py chinese.txt --only char:lstm:embed-for-vocab
    python benchmarks/train_defaults.py small.txt --only char:lstm:small-text
    python benchmarks/train_defaults.py small.txt --only char:lstm:batch-shrink

Every row is one `termlm train` run with the defaults except what the arm names (the first arm
of a trial is the default: the value termlm chooses when nothing is given, rules for the data
included); the figure is the validation loss on the same validation tokens for every run of a
corpus (nats per token; compare within a corpus and level only). The budget is counted on
`--budget-clock` (default cpu: this process's CPU seconds, so runs one after the other, or side
by side with `--parallel 2`, get the same compute on a busy machine). Rows are appended to
--jsonl as they finish, and a Markdown table is printed at the end with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

# (level, arch, what is varied, [(label, options)]): the first arm is termlm's default.
Arm = tuple[str, dict[str, Any]]
TRIALS: list[tuple[str, str, str, list[Arm]]] = [
    # character level
    ("char", "lstm", "lr", [("5e-3", {}), ("2e-3", {"lr": 2e-3}), ("1e-2", {"lr": 1e-2})]),
    ("char", "lstm", "batch", [("16", {}), ("8", {"batch_size": 8}), ("32", {"batch_size": 32})]),
    ("char", "gru", "lr", [("5e-3", {}), ("2e-3", {"lr": 2e-3}), ("1e-2", {"lr": 1e-2})]),
    ("char", "rnn", "lr", [("5e-3", {}), ("2e-3", {"lr": 2e-3}), ("1e-2", {"lr": 1e-2})]),
    ("char", "attention", "lr", [("3e-3", {}), ("1e-3", {"lr": 1e-3}), ("5e-3", {"lr": 5e-3})]),
    ("char", "transformer", "lr", [("1e-3", {}), ("3e-4", {"lr": 3e-4}), ("3e-3", {"lr": 3e-3})]),
    ("char", "transformer", "layers", [("1", {}), ("2", {"layers": 2}), ("4", {"layers": 4})]),
    # the rules in fit_to_data: a large character vocabulary, a short text
    (
        "char",
        "lstm",
        "embed-for-vocab",
        [("rule: 256", {}), ("64", {"embed": 64}), ("128", {"embed": 128})],
    ),
    (
        "char",
        "lstm",
        "small-text",
        [
            ("rule: hidden 128", {}),
            ("hidden 256", {"hidden": 256}),
            ("hidden 128, dropout 0.2", {"hidden": 128, "dropout": 0.2}),
        ],
    ),
    # the batch a short text gets (give a text under ~20 KB: fewer than 20 batches of 16 at
    # context 64): the rule's (a twentieth of the text's windows), the level's 16, or 4
    (
        "char",
        "lstm",
        "batch-shrink",
        [("rule: windows / 20", {}), ("16", {"batch_size": 16}), ("4", {"batch_size": 4})],
    ),
    # BPE level
    ("bpe", "lstm", "lr", [("3e-3", {}), ("1e-3", {"lr": 1e-3}), ("1e-2", {"lr": 1e-2})]),
    ("bpe", "lstm", "hidden", [("384", {}), ("256", {"hidden": 256}), ("512", {"hidden": 512})]),
    ("bpe", "transformer", "lr", [("1e-3", {}), ("3e-4", {"lr": 3e-4}), ("3e-3", {"lr": 3e-3})]),
    (
        "bpe",
        "transformer",
        "layers",
        [("1 x 128", {}), ("2 x 128", {"layers": 2}), ("1 x 256", {"hidden": 256, "embed": 256})],
    ),
    # the word-level Transformer (word LSTM/GRU defaults are chosen with the word recipes)
    ("word", "transformer", "lr", [("1e-3", {}), ("3e-4", {"lr": 3e-4}), ("3e-3", {"lr": 3e-3})]),
    (
        "word",
        "transformer",
        "size",
        [("1 x 128", {}), ("2 x 128", {"layers": 2}), ("1 x 256", {"hidden": 256, "embed": 256})],
    ),
    (
        "word",
        "transformer",
        "dropout",
        [("0.1", {}), ("0", {"dropout": 0.0}), ("0.3", {"dropout": 0.3})],
    ),
]


def trial_key(level: str, arch: str, what: str) -> str:
    return f"{level}:{arch}:{what}"


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One arm, in its own process: train under the budget, return its row."""
    from termlm.training.loop import train
    from termlm.training.options import build_options

    corpus, level, arch, what, label = (
        job["corpus"],
        job["level"],
        job["arch"],
        job["what"],
        job["label"],
    )
    slug = "".join(c if c.isalnum() else "-" for c in f"{level}-{arch}-{what}-{label}")
    options = build_options(
        corpus=corpus,
        level=level,
        arch=arch,
        minutes=job["minutes"],
        budget_clock=job["clock"],
        threads=job["threads"],
        out=job["out"],
        name=f"{Path(corpus).stem}-{slug}",
        eval_tokens=job["eval_tokens"],
        patience=0,
        command="benchmarks/train_defaults.py",
        **job["options"],
    )
    options.final_eval = False  # every run of a corpus scored on the same validation tokens
    result = train(options, show_progress=False)
    return {
        "corpus": Path(corpus).name,
        "trial": trial_key(level, arch, what),
        "arm": label,
        "default": job["default"],
        "val_loss": result["val_loss"],
        "val_tokens": result["val_tokens"],
        "val_bpc": result["val_bpc"],
        "params": result["params"],
        "steps": result["steps"],
        "batch_size": options.batch_size,  # after the rules for the data
        "val_share": result["val_share"],
        "budget_clock": result.get("budget_clock", job["clock"]),
        "load": os.getloadavg()[0],
    }


def table(rows: list[dict[str, Any]], corpora: list[str]) -> str:
    """One line per arm, a column per corpus; the default in bold, the best of a trial marked."""
    names = [Path(c).name for c in corpora]
    lines = [
        "| trial | arm | " + " | ".join(f"{n}: val loss (steps)" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    by_arm: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    best: dict[tuple[str, str], float] = {}
    for row in rows:
        by_arm.setdefault((row["trial"], row["arm"]), {})[row["corpus"]] = row
        key = (row["trial"], row["corpus"])
        best[key] = min(best.get(key, float("inf")), row["val_loss"])
    trials = list(dict.fromkeys(trial for trial, _ in by_arm))
    for (trial, arm), cells in sorted(by_arm.items(), key=lambda item: trials.index(item[0][0])):
        default = any(r["default"] for r in cells.values())
        shown = []
        for name in names:
            cell = cells.get(name)
            if cell is None:
                shown.append("-")
                continue
            mark = " (best)" if cell["val_loss"] <= best[(trial, name)] else ""
            batch = f", batch {cell['batch_size']}" if "batch" in trial else ""
            shown.append(f"{cell['val_loss']:.3f} ({cell['steps']:,}{batch}){mark}")
        label = f"**{arm}** (default)" if default else arm
        lines.append(f"| {trial} | {label} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="+")
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--budget-clock", default="cpu", choices=("cpu", "wall"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1, help="arms trained side by side")
    parser.add_argument("--eval-tokens", type=int, default=16384)
    parser.add_argument("--only", default="", help="comma-separated level:arch:what to run")
    parser.add_argument("--list", action="store_true", help="list the trials and exit")
    parser.add_argument("--jsonl", default="train_defaults.jsonl")
    parser.add_argument(
        "--table", action="store_true", help="print the table of the rows in --jsonl and exit"
    )
    args = parser.parse_args()
    if args.table:
        with open(args.jsonl, encoding="utf-8") as handle:
            saved = [json.loads(line) for line in handle if line.strip()]
        print(table(saved, args.corpora))
        return
    if args.list:
        for level, arch, what, arms in TRIALS:
            print(trial_key(level, arch, what), "|", ", ".join(label for label, _ in arms))
        return
    only = {s for s in args.only.split(",") if s}
    unknown = only - {trial_key(lv, a, w) for lv, a, w, _ in TRIALS}
    if unknown:
        parser.error(f"unknown trial(s) {sorted(unknown)}; --list shows them")
    print(
        f"clock: {args.budget_clock}; {args.minutes:g} min per arm, threads {args.threads}, "
        f"{args.parallel} arm(s) at once; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as out:
        jobs = [
            {
                "corpus": corpus,
                "level": level,
                "arch": arch,
                "what": what,
                "label": label,
                "options": options,
                "default": index == 0,
                "minutes": args.minutes,
                "clock": args.budget_clock,
                "threads": args.threads,
                "eval_tokens": args.eval_tokens,
                "out": out,
            }
            for level, arch, what, arms in TRIALS
            if not only or trial_key(level, arch, what) in only
            for corpus in args.corpora
            for index, (label, options) in enumerate(arms)
        ]

        # an arm that several trials share (each trial's default) is trained once
        def same(job: dict[str, Any]) -> str:
            return json.dumps([job["corpus"], job["level"], job["arch"], job["options"]])

        groups: dict[str, list[dict[str, Any]]] = {}
        for job in jobs:
            groups.setdefault(same(job), []).append(job)
        unique = [group[0] for group in groups.values()]
        with ProcessPoolExecutor(args.parallel, mp_context=get_context("spawn")) as pool:
            for key, trained in zip(groups, pool.map(run_one, unique), strict=True):
                for job in groups[key]:
                    row = {
                        **trained,
                        "trial": trial_key(job["level"], job["arch"], job["what"]),
                        "arm": job["label"],
                        "default": job["default"],
                    }
                    rows.append(row)
                    with open(args.jsonl, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    loads = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nclock {args.budget_clock}, {args.minutes:g} min per arm; load average now {loads}")
    print(table(rows, args.corpora))


if __name__ == "__main__":
    main()
