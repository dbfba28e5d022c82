"""Big corpora: read in chunks, tokenized piece by piece into compact arrays, in bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.corpus import read_corpus
from termlm.tokenizers import fit_tokenizer
from termlm.tokenizers.bulk import cut_points, encode_large, ids_dtype

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak. Σίσυφος ΟΔΟΣ\n"

pieces = st.text(
    alphabet=st.sampled_from([*"ab cd\n\n!.,'ΣσςAÉé\t ", "İ", "ß", "🙂"]), max_size=300
)


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
@settings(max_examples=40, deadline=None)
@given(text=pieces, piece_chars=st.integers(1, 40), lowercase=st.booleans())
def test_encoding_in_pieces_equals_encoding_at_once(
    kind: str, text: str, piece_chars: int, lowercase: bool
) -> None:
    fitted = SAMPLE + text[: len(text) // 2]
    if kind == "bpe":
        tokenizer = fit_tokenizer("bpe", fitted, vocab_size=300, lowercase=lowercase)
    else:
        tokenizer = fit_tokenizer(kind, fitted, lowercase=lowercase)
    whole = tokenizer.encode(text)
    ids = encode_large(tokenizer, text, piece_chars=piece_chars)
    assert ids.dtype == np.uint16
    assert ids.tolist() == whole


def test_cut_points_fall_back_to_white_space_and_never_split_bpe_words() -> None:
    text = "word " * 50  # no newline: the char and word tokenizers cut after a space
    cuts = cut_points(text, 12, "char")
    assert cuts and all(text[c - 1] == " " and text[c] != " " for c in cuts)
    assert cut_points(text, 12, "bpe") == []  # bpe: only at "x\ny"
    lines = "ab\ncd\n" * 40
    assert all(lines[c - 1] == "\n" for c in cut_points(lines, 10, "bpe"))


def test_big_vocabularies_get_int32() -> None:
    assert ids_dtype(65536) == np.uint16 and ids_dtype(65537) == np.int32


def test_progress_is_reported_while_reading_and_tokenizing(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text(SAMPLE * 100_000, encoding="utf-8")  # ~9 MB: three read chunks
    seen: list[tuple[int, int]] = []
    corpus = read_corpus(path, on_progress=lambda done, total: seen.append((done, total)))
    size = path.stat().st_size
    assert len(seen) == -(-size // (1 << 22)) and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    import hashlib

    assert corpus.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    tokenizer = fit_tokenizer("char", corpus.text)
    steps: list[int] = []
    ids = encode_large(tokenizer, corpus.text, on_progress=lambda done, total: steps.append(done))
    assert len(steps) >= 8 and steps[-1] == len(corpus.text)
    assert len(ids) == len(corpus.text)


PEAK = """
import json, resource, sys, time
from termlm.training.options import build_options
from termlm.training.prepare import prepare

started = time.perf_counter()
options = build_options(corpus=sys.argv[1], level="char", arch="lstm", out=sys.argv[2])
prepared = prepare(options)
batch = prepared.batches.batch(prepared.batches.epoch(0)[0])
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "tokens": int(len(prepared.batches.ids)),
    "dtype": str(prepared.batches.ids.dtype),
    "batch_dtype": str(batch.inputs.dtype),
}))
"""


def _prepare_big(tmp_path: Path, megabytes: int) -> dict[str, float | int | str]:
    """Write a corpus of `megabytes` MB and prepare training on it in a fresh process."""
    block = (SAMPLE * 2000).encode("utf-8")
    path = tmp_path / "big.txt"
    with open(path, "wb") as handle:
        for _ in range(megabytes * (1 << 20) // len(block) + 1):
            handle.write(block)
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, float | int | str] = json.loads(proc.stdout.strip().splitlines()[-1])
    # a char vocabulary under 256 tokens: one byte per token, read by memory map
    assert result["dtype"] == "uint8" and result["batch_dtype"] == "int64"
    assert int(result["tokens"]) > 0.85 * megabytes * (1 << 20) * len(SAMPLE) / len(SAMPLE.encode())
    path.unlink()
    return result


def test_100_mb_corpus_in_bounded_memory(tmp_path: Path) -> None:
    # torch alone is ~300 MB; the corpus is read in chunks into a token file read by memory
    # map, so nothing grows with the corpus' size
    result = _prepare_big(tmp_path, 100)
    assert float(result["peak_mb"]) < 768, result
