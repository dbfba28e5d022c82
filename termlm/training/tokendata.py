"""A training corpus as token files: scanned, its tokenizer fitted (or given), tokenized once.

Everything is kept in the cache folder (``termlm.tokencache``): the fitted tokenizer by the
corpus' SHA-256 and the fitting options, the token file by the corpus, the tokenizer and the
validation split. A second run on the same corpus opens both at once. Under torchrun, rank 0
does the work and the other ranks wait for the files to appear, then open the same ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from termlm.atomic import atomic_write_text
from termlm.corpus import Corpus, read_corpus
from termlm.corpusstream import (
    CorpusScan,
    is_regular_file,
    iter_text,
    recall_scan,
    scan_corpus,
    text_chunks,
)
from termlm.tokencache import tokenizers_dir
from termlm.tokenfile import Split, TextSource, TokenFile, find_token_file, token_file
from termlm.tokenizers import Tokenizer, tokenizer_from_json
from termlm.tokenizers.base import fit_tokenizer_chunks
from termlm.tokenizers.fitting import BPE_SAMPLE_CHARS, bpe_sample_note
from termlm.training.options import TrainOptions
from termlm.training.progress import BIG_CORPUS_BYTES, stage_progress

FIT_FORMAT = 1
WAIT_SECONDS = 0.5  # how often a waiting rank looks for rank 0's files

Say = Callable[[str], None]


@dataclass
class Opened:
    """A corpus ready to be tokenized: its record (no text held) and a way to read it."""

    corpus: Corpus
    source: TextSource


def open_corpus(path: str, *, show_progress: bool, say: Say | None = None) -> Opened:
    """A regular file is scanned in chunks (or its scan recalled); a pipe or device is read into
    memory once, bounded as ``read_corpus`` bounds it."""
    if not is_regular_file(path):
        corpus = read_corpus(path)  # says what is wrong with a missing path, or reads the pipe
        text = corpus.text
        source = TextSource(
            sha256=corpus.sha256,
            name=corpus.name,
            chars=len(text),
            size=len(text),
            chunks=lambda progress: text_chunks(text),
        )
        return Opened(corpus, source)
    size = Path(path).stat().st_size
    if say is not None:
        say(f"reading {path} ({size / 2**20:,.1f} MB)")
    with stage_progress(show_progress and size > BIG_CORPUS_BYTES, "reading") as advance:
        scan = scan_corpus(path, on_progress=advance)
    return Opened(scan.as_corpus(), _source(scan))


def _source(scan: CorpusScan) -> TextSource:
    def chunks(progress: Callable[[int, int], None] | None) -> Iterator[str]:
        return iter_text(scan, on_progress=progress)

    return TextSource(
        sha256=scan.sha256, name=scan.name, chars=scan.chars, size=scan.size, chunks=chunks
    )


def _fit_key(sha256: str, options: TrainOptions) -> str:
    spec = {
        "format": FIT_FORMAT,
        "corpus": sha256,
        "level": options.level,
        "lowercase": options.lowercase,
        "punctuation": options.punctuation,
        "max_vocab": options.max_vocab,
        "vocab_size": options.vocab_size,
        "bpe_sample": BPE_SAMPLE_CHARS,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def _cached_tokenizer(sha256: str, options: TrainOptions) -> Tokenizer | None:
    path = tokenizers_dir() / f"{_fit_key(sha256, options)}.json"
    try:
        return tokenizer_from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def fitted_tokenizer(
    opened: Opened, options: TrainOptions, *, show_progress: bool, say: Say | None = None
) -> Tokenizer:
    """The tokenizer fitted on the corpus with these options: from the cache, or fitted now."""
    source = opened.source
    found = _cached_tokenizer(source.sha256, options)
    if found is not None:
        return found
    if say is not None:
        say(f"fitting the {options.level} tokenizer on {source.chars:,} characters")
        note = bpe_sample_note(source.chars) if options.level == "bpe" else None
        if note:
            say(note)
    big = show_progress and source.size > BIG_CORPUS_BYTES
    with stage_progress(big, "fitting") as advance:
        tokenizer = fit_tokenizer_chunks(
            options.level,
            lambda: source.chunks(advance),
            source.chars,
            lowercase=options.lowercase,
            punctuation=options.punctuation,
            max_vocab=options.max_vocab,
            vocab_size=options.vocab_size,
        )
    path = tokenizers_dir() / f"{_fit_key(source.sha256, options)}.json"
    with contextlib.suppress(OSError):  # a read-only cache only costs fitting again next time
        atomic_write_text(path, json.dumps(tokenizer.to_json()))
    return tokenizer


def split_of(options: TrainOptions) -> Split:
    return Split(options.val_split, options.val_fraction)


def tokens_for(
    opened: Opened,
    tokenizer: Tokenizer,
    options: TrainOptions,
    *,
    show_progress: bool,
    say: Say | None = None,
) -> TokenFile:
    """The token file of the corpus under this tokenizer and split: reused, or written now."""
    split = split_of(options)
    found = find_token_file(opened.source.sha256, tokenizer, split)
    if found is not None:
        if say is not None:
            say(f"token file: {found.folder} (reused)")
        return found
    if say is not None:
        say(f"tokenizing {opened.source.chars:,} characters at the {options.level} level")
    big = show_progress and opened.source.size > BIG_CORPUS_BYTES
    with stage_progress(big, "tokenizing") as advance:
        made, _ = token_file(opened.source, tokenizer, split, on_progress=advance)
    if say is not None:
        say(f"token file: {made.folder}")
    return made


def wait_for_rank0(
    path: str, options: TrainOptions, tokenizer_json: dict[str, Any] | None
) -> tuple[Corpus, Tokenizer, TokenFile]:
    """Under torchrun, ranks other than 0: wait until rank 0 has scanned the corpus, fitted the
    tokenizer and written the token file, then open the same files."""
    while True:
        scan = recall_scan(path)
        if scan is not None:
            tokenizer = (
                tokenizer_from_json(tokenizer_json)
                if tokenizer_json is not None
                else _cached_tokenizer(scan.sha256, options)
            )
            if tokenizer is not None:
                found = find_token_file(scan.sha256, tokenizer, split_of(options))
                if found is not None:
                    return scan.as_corpus(), tokenizer, found
        time.sleep(WAIT_SECONDS)
