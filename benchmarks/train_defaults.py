"""Each training default against two alternatives, under the same short budget, on each corpus.

    python benchmarks/train_defaults.py tinyshakespeare.txt other.txt --minutes 0.5 --threads 1

Every row is one `termlm train` run with the defaults except the one value named; the figure is
the validation loss on the same validation tokens for every run of a corpus (nats per token).
Rows are written to --jsonl as they finish, and a Markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from termlm.training.loop import train
from termlm.training.options import build_options

# (level, arch, option, [default, alternative, alternative])
TRIALS: list[tuple[str, str, str, list[Any]]] = [
    ("char", "lstm", "lr", [5e-3, 2e-3, 1e-2]),
    ("char", "lstm", "batch_size", [16, 8, 32]),
    ("char", "gru", "lr", [5e-3, 2e-3, 1e-2]),
    ("char", "rnn", "lr", [3e-3, 1e-3, 5e-3]),
    ("char", "attention", "lr", [3e-3, 1e-3, 5e-3]),
    ("char", "transformer", "lr", [1e-3, 3e-4, 5e-3]),
    ("char", "transformer", "layers", [4, 1, 2]),
    ("word", "lstm", "max_vocab", [6000, 2000, 20000]),
]


def run_one(
    corpus: str, level: str, arch: str, option: str, value: Any, args: argparse.Namespace, out: str
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {option: value}
    options = build_options(
        corpus=corpus,
        level=level,
        arch=arch,
        minutes=args.minutes,
        threads=args.threads,
        out=out,
        name=f"{Path(corpus).stem}-{level}-{arch}-{option}-{value}",
        eval_tokens=args.eval_tokens,
        patience=0,
        command="benchmarks/train_defaults.py",
        **kwargs,
    )
    options.final_eval = False  # every run of a corpus scored on the same validation tokens
    result = train(options, show_progress=False)
    return {
        "corpus": Path(corpus).name,
        "level": level,
        "arch": arch,
        "option": option,
        "value": value,
        "val_loss": result["val_loss"],
        "val_tokens": result["val_tokens"],
        "val_bpc": result["val_bpc"],
        "params": result["params"],
        "steps": result["steps"],
        "val_share": result["val_share"],
    }


def table(rows: list[dict[str, Any]], corpora: list[str]) -> str:
    names = [Path(c).name for c in corpora]
    lines = [
        "| level | arch | option | value | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    seen: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for row in rows:
        key = (row["level"], row["arch"], row["option"], str(row["value"]))
        seen.setdefault(key, {})[row["corpus"]] = row["val_loss"]
    defaults = {(lv, a, o): str(v[0]) for lv, a, o, v in TRIALS}
    for (level, arch, option, value), losses in seen.items():
        mark = "**" if defaults.get((level, arch, option)) == value else ""
        cells = " | ".join(f"{mark}{losses[n]:.3f}{mark}" if n in losses else "-" for n in names)
        lines.append(f"| {level} | {arch} | {option} | {mark}{value}{mark} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="+")
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-tokens", type=int, default=16384)
    parser.add_argument("--only", default="", help="comma-separated level:arch:option to run")
    parser.add_argument("--jsonl", default="train_defaults.jsonl")
    args = parser.parse_args()
    only = {s for s in args.only.split(",") if s}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as out:
        for level, arch, option, values in TRIALS:
            if only and f"{level}:{arch}:{option}" not in only:
                continue
            for corpus in args.corpora:
                for value in values:
                    row = run_one(corpus, level, arch, option, value, args, out)
                    rows.append(row)
                    with open(args.jsonl, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    print(table(rows, args.corpora))


if __name__ == "__main__":
    main()
