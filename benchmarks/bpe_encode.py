"""BPE encoding throughput on one core: the tokenizer on the whole text against word by word.

Usage:
    python benchmarks/bpe_encode.py CORPUS.txt [--mb 20] [--vocab 2000] [--repeat 3]
    e.g. python benchmarks/bpe_encode.py tinyshakespeare.txt

A byte-level BPE tokenizer is fitted on CORPUS (as `termlm train --level bpe` fits it); then the
first --mb MB of CORPUS repeated are encoded in 1 MiB pieces (as token files are written), by
`tokenizers` on each whole piece and by termlm's word path (each distinct word encoded once), the
two side by side in turn, --repeat times each. Figures are MB of text per CPU second of this
process (one thread: RAYON_NUM_THREADS=1), so load on the machine does not change them much; the
load average is printed. The ids of both are checked to be the same.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers is imported

import numpy as np

from termlm.tokenizers import fit_tokenizer
from termlm.tokenizers.bpe import BpeTokenizer
from termlm.tokenizers.bpewords import WordCache
from termlm.tokenizers.cuts import PIECE_CHARS, recut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--mb", type=float, default=20.0, help="MB of text to encode")
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = args.corpus.read_text(encoding="utf-8")
    tokenizer = fit_tokenizer("bpe", source[: 16 << 20], vocab_size=args.vocab)
    assert isinstance(tokenizer, BpeTokenizer)
    size = int(args.mb * 1e6)
    text = (source * (size // len(source) + 1))[:size]
    pieces = list(recut([text], "bpe", PIECE_CHARS))
    hf = tokenizer._hf

    def whole() -> np.ndarray:
        return np.concatenate([np.asarray(hf.encode(p).ids, dtype=np.int64) for p in pieces])

    def by_word() -> np.ndarray:
        words = WordCache(hf)  # a fresh memory of words each time
        return np.concatenate([words.encode(p) for p in pieces])

    print(f"load average at start {os.getloadavg()}; clock: CPU seconds of this process")
    print(f"{len(text) / 1e6:.1f} MB of {args.corpus.name}, vocabulary {tokenizer.vocab_size}")
    best: dict[str, float] = {}
    ids: dict[str, np.ndarray] = {}
    for _ in range(args.repeat):
        for name, encode in (("tokenizers, whole pieces", whole), ("word by word", by_word)):
            start = time.process_time()
            ids[name] = encode()
            seconds = time.process_time() - start
            best[name] = max(best.get(name, 0.0), len(text) / 1e6 / seconds)
    first, second = ids.values()
    same = np.array_equal(first, second)
    print("| encoder | MB/s (one core, best of runs) | vs tokenizers |")
    print("|---|---:|---:|")
    base = best["tokenizers, whole pieces"]
    for name, rate in best.items():
        print(f"| {name} | {rate:.2f} | {rate / base:.1f}x |")
    print(f"same ids: {same}; load average at end {os.getloadavg()}")
    if not same:
        raise SystemExit("the two encoders gave different ids")


if __name__ == "__main__":
    main()
