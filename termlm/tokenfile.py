"""Token files: a corpus tokenized once into flat arrays of ids, read back by memory map.

A token file holds the ids of the training part (``train.bin``) and of the validation part
(``val.bin``) of one corpus under one tokenizer and one validation split, in the smallest
unsigned type the vocabulary fits (uint8, uint16, uint32); ``meta.json`` says what they are.
The split is made on the text as ``training.split`` makes it, and each part is encoded as one
text (in pieces cut where the tokenizer cuts anyway), so the ids are exactly those of the
in-memory path. A file is written in a folder of its own and renamed into place when complete:
Ctrl-C, a full disk or a killed process leave no half file that could be read. No torch here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from termlm.errors import CorpusError
from termlm.tokencache import BUILDING, CACHE_ENV, remove_stale_builds, tokens_dir
from termlm.tokenizers.base import Tokenizer, encode_array
from termlm.tokenizers.cuts import PIECE_CHARS, find_cut, token_dtype

FORMAT = 1
SPLIT_KINDS = ("tail", "interleaved", "none")
BLOCK_CHARS = 8192  # the interleaved split's blocks (as training.split.BLOCK_CHARS)
VAL_HEAD_CHARS = 1 << 16  # the start of the validation text kept for the sample prompt


@dataclass(frozen=True)
class Split:
    """How the text is parted: the last ``fraction`` (tail), every k-th block (interleaved),
    or not at all (none: every id in ``train``)."""

    kind: str
    fraction: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "fraction": self.fraction, "block": BLOCK_CHARS}


@dataclass(frozen=True)
class TextSource:
    """A corpus to tokenize: its identity, and a fresh pass over its text per ``chunks`` call."""

    sha256: str
    name: str
    chars: int
    size: int  # bytes, for progress
    chunks: Callable[[Callable[[int, int], None] | None], Iterator[str]]


@dataclass
class TokenFile:
    folder: Path
    meta: dict[str, Any]
    train: np.ndarray  # memory-mapped ids (read only)
    val: np.ndarray

    @property
    def val_chars(self) -> int:
        return int(self.meta["val_chars"])

    @property
    def val_head(self) -> str:
        return str(self.meta["val_head"])


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    return hashlib.sha256(
        json.dumps(tokenizer.to_json(), sort_keys=True).encode("utf-8")
    ).hexdigest()


def token_key(corpus_sha256: str, tokenizer: Tokenizer, split: Split) -> str:
    """The cache key: the corpus' content, the tokenizer's description and the split."""
    spec = {
        "format": FORMAT,
        "corpus": corpus_sha256,
        "tokenizer": tokenizer_sha256(tokenizer),
        "split": split.to_json(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def _map(path: Path, dtype: str, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


def open_token_file(folder: Path) -> TokenFile | None:
    """The token file in ``folder``; None when it is not there or not whole (sizes checked)."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        dtype = np.dtype(meta["dtype"])
        counts = {part: int(meta[f"{part}_tokens"]) for part in ("train", "val")}
        for part, count in counts.items():
            if (folder / f"{part}.bin").stat().st_size != count * dtype.itemsize:
                return None
        train = _map(folder / "train.bin", dtype.str, counts["train"])
        val = _map(folder / "val.bin", dtype.str, counts["val"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    with contextlib.suppress(OSError):  # `termlm cache` lists by last use
        os.utime(folder / "meta.json")
    return TokenFile(folder=folder, meta=meta, train=train, val=val)


def find_token_file(corpus_sha256: str, tokenizer: Tokenizer, split: Split) -> TokenFile | None:
    return open_token_file(tokens_dir() / token_key(corpus_sha256, tokenizer, split))


def token_file(
    source: TextSource,
    tokenizer: Tokenizer,
    split: Split,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[TokenFile, bool]:
    """The token file of this corpus, tokenizer and split: from the cache, or built now.

    Returns (the file, whether it was built). A damaged entry is built again.
    """
    folder = tokens_dir() / token_key(source.sha256, tokenizer, split)
    found = open_token_file(folder)
    if found is not None:
        return found, False
    try:
        return build_token_file(source, tokenizer, split, folder, on_progress=on_progress), True
    except OSError as exc:  # a full disk, a read-only cache folder (nothing was left behind)
        raise CorpusError(
            f"cannot write the token file of {source.name} in {folder.parent}: "
            f"{exc.strerror or exc}",
            f"it needs about {_needed_mb(source, tokenizer)} MB: free some space "
            f"(termlm cache --clear), or set {CACHE_ENV} to a folder with room",
        ) from None


def _needed_mb(source: TextSource, tokenizer: Tokenizer) -> str:
    itemsize = np.dtype(token_dtype(tokenizer.vocab_size)).itemsize
    return f"{max(1, source.chars * itemsize // (1 << 20)):,}"


class _Writer:
    """Text in, ids out: text is gathered until a cut point, then encoded and appended."""

    def __init__(self, tokenizer: Tokenizer, handle: BinaryIO, dtype: type) -> None:
        self.tokenizer = tokenizer
        self.handle = handle
        self.dtype = dtype
        self.parts: list[str] = []
        self.pending = 0
        self.threshold = 2 * PIECE_CHARS
        self.tokens = 0
        self.chars = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.pending += len(text)
        self.chars += len(text)
        if self.pending >= self.threshold:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        buffer = "".join(self.parts)
        pos = 0
        while not final and len(buffer) - pos > PIECE_CHARS:
            cut = find_cut(buffer, pos + PIECE_CHARS, self.tokenizer.kind)
            if cut is None:
                break
            self._encode(buffer[pos:cut])
            pos = cut
        if final and pos < len(buffer):
            self._encode(buffer[pos:])
            pos = len(buffer)
        rest = buffer[pos:]
        self.parts = [rest] if rest else []
        self.pending = len(rest)
        # no cut in sight: wait for twice as much text before looking again
        self.threshold = max(2 * PIECE_CHARS, 2 * self.pending)

    def _encode(self, text: str) -> None:
        ids: np.ndarray = encode_array(self.tokenizer, text).astype(self.dtype)
        ids.tofile(self.handle)
        self.tokens += len(ids)

    def finish(self) -> None:
        self._flush(final=True)
        self.handle.flush()
        os.fsync(self.handle.fileno())


def tail_parts(chunks: Iterable[str], cut: int) -> Iterator[tuple[bool, str]]:
    """(is_validation, text): everything before character ``cut`` is training text."""
    done = 0
    for chunk in chunks:
        if done >= cut:
            yield True, chunk
        elif done + len(chunk) <= cut:
            yield False, chunk
        else:
            yield False, chunk[: cut - done]
            yield True, chunk[cut - done :]
        done += len(chunk)


def interleaved_parts(
    chunks: Iterable[str], total: int, fraction: float, block_chars: int = BLOCK_CHARS
) -> Iterator[tuple[bool, str]]:
    """``training.split.split_interleaved`` on text arriving in chunks: blocks of about
    ``block_chars`` cut at line ends, every k-th one held out; a text of fewer than k blocks
    holds out its last block. ``total`` is the text's length in characters."""
    every = max(2, round(1.0 / fraction))
    buffer, pos, start_abs, index = "", 0, 0, 0
    pending: str | None = None  # the last training block, held until the next block is known
    any_val = False
    for chunk in chunks:
        buffer = buffer[pos:] + chunk
        pos = 0
        while True:
            end_abs = min(total, start_abs + block_chars)
            if end_abs - start_abs > len(buffer) - pos:
                break  # the block is not all here yet
            end = pos + (end_abs - start_abs)
            if end_abs < total:
                newline = buffer.rfind("\n", pos + block_chars // 2, end)
                if newline != -1:
                    end = newline + 1
            block = buffer[pos:end]
            if not block:
                break
            start_abs += len(block)
            pos = end
            if index % every == every - 1:
                any_val = True
                yield True, block
            else:
                if pending is not None:
                    yield False, pending
                pending = block
            index += 1
    if start_abs < total:  # the text was shorter than it was said to be
        raise CorpusError("the corpus changed while termlm read it", "run the command again")
    if pending is not None:
        yield (not any_val), pending


def build_token_file(
    source: TextSource,
    tokenizer: Tokenizer,
    split: Split,
    folder: Path,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> TokenFile:
    """Tokenize ``source`` into ``folder``, atomically: written under a temporary name, renamed
    when whole. OSError (a full disk) and Ctrl-C leave nothing behind."""
    if split.kind not in SPLIT_KINDS:
        raise ValueError(f"unknown split {split.kind!r}")
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(parent)
    if folder.exists() and open_token_file(folder) is None:  # damaged: made again
        shutil.rmtree(folder, ignore_errors=True)
    work = parent / f"{BUILDING}{folder.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    dtype = token_dtype(tokenizer.vocab_size)
    try:
        with open(work / "train.bin", "wb") as train_out, open(work / "val.bin", "wb") as val_out:
            train = _Writer(tokenizer, train_out, dtype)
            val = _Writer(tokenizer, val_out, dtype)
            head: list[str] = []
            head_chars = 0
            chunks = source.chunks(on_progress)
            if split.kind == "tail":
                cut = int(source.chars * (1.0 - split.fraction))  # as split_text cuts
                parts: Iterable[tuple[bool, str]] = tail_parts(chunks, cut)
            elif split.kind == "interleaved":
                parts = interleaved_parts(chunks, source.chars, split.fraction)
            else:
                parts = ((False, chunk) for chunk in chunks)
            for is_val, text in parts:
                if is_val:
                    val.add(text)
                    if head_chars < VAL_HEAD_CHARS:
                        head.append(text[: VAL_HEAD_CHARS - head_chars])
                        head_chars += len(head[-1])
                else:
                    train.add(text)
            train.finish()
            val.finish()
        if train.chars + val.chars != source.chars:
            raise CorpusError("the corpus changed while termlm read it", "run the command again")
        meta = {
            "format": FORMAT,
            "corpus_sha256": source.sha256,
            "corpus_name": source.name,
            "chars": source.chars,
            "level": tokenizer.kind,
            "vocab_size": tokenizer.vocab_size,
            "tokenizer_sha256": tokenizer_sha256(tokenizer),
            "split": split.to_json(),
            "dtype": np.dtype(dtype).name,
            "train_tokens": train.tokens,
            "val_tokens": val.tokens,
            "train_chars": train.chars,
            "val_chars": val.chars,
            "val_head": "".join(head),
            "created": time.time(),
        }
        with open(work / "meta.json", "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.rename(work, folder)
        except OSError:
            if not folder.is_dir():  # another process made it first: theirs is as good
                raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    made = open_token_file(folder)
    if made is None:
        raise CorpusError(
            f"the token file in {folder} cannot be read back", "delete it and run again"
        )
    return made
