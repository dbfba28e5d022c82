"""A corpus on disk read in chunks, never whole: scanned once (SHA-256, encoding, characters),
then decoded chunk by chunk as often as needed. Standard library only.

The decoding follows ``corpus.decode_bytes`` exactly (byte-order mark, then UTF-8, then
Windows-1252, then Latin-1), so the streamed text is the text ``read_corpus`` gives. A scan is
remembered by the file's path, size, inode and modification time (in the cache folder), so a
second run on the same unchanged file does not hash it again.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from termlm.atomic import atomic_write_text
from termlm.corpus import (
    _BOMS,
    MAX_ENV,
    MIB,
    READ_CHUNK,
    Corpus,
    _binary_refusal,
    _is_wide,
    _looks_binary,
    _too_big,
    max_corpus_bytes,
)
from termlm.errors import CorpusError

# The most bytes a corpus read in chunks may have, unless TERMLM_MAX_CORPUS_MB says otherwise:
# memory no longer grows with the corpus, only the cache on disk does.
DEFAULT_STREAM_MB = 1 << 16  # 64 GiB
_CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
_MEMO_FILE = "corpora.json"
_MEMO_ENTRIES = 200

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class CorpusScan:
    """What one pass over a corpus file found; the text itself is not held."""

    path: str  # absolute
    name: str
    sha256: str
    encoding: str
    size: int  # bytes
    chars: int
    note: str | None = None

    def as_corpus(self) -> Corpus:
        """A Corpus record without its text (``chars`` says how long it is)."""
        return Corpus(
            text="",
            name=self.name,
            sha256=self.sha256,
            encoding=self.encoding,
            note=self.note,
            length=self.chars,
        )


def stream_limit() -> int:
    """The most bytes of a corpus read in chunks: 64 GiB, or TERMLM_MAX_CORPUS_MB."""
    if os.environ.get(MAX_ENV, "").strip():
        return max_corpus_bytes()
    return DEFAULT_STREAM_MB * MIB


def is_regular_file(path: str | Path) -> bool:
    """A regular file (read twice if need be), not a pipe, FIFO or device (read once, bounded)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _check_path(p: Path) -> None:
    if not p.exists():
        raise CorpusError(f"corpus not found: {p}", "check the path to the text file")
    if p.is_dir():
        raise CorpusError(f"{p} is a folder, not a text file", "point to one text file")


def _read_error(p: Path, exc: OSError) -> CorpusError:
    return CorpusError(f"cannot read {p}: {exc.strerror or exc}", "check that the file is readable")


class _Scanner:
    """Chunk by chunk: hash, refuse binary data, find the encoding, count the characters."""

    def __init__(self, p: Path) -> None:
        self.p = p
        self.digest = hashlib.sha256()
        self.head = bytearray()  # the first 64 KiB, for the control-byte test
        self.size = 0
        self.chars = 0
        self.encoding: str | None = None  # settled by a byte-order mark, else utf-8 until it fails
        self.utf8_error: int | None = None  # where UTF-8 failed
        self.cp1252_ok = True
        self.has_text = False
        self.decoder: codecs.IncrementalDecoder | None = None
        self.wide = False

    def feed(self, chunk: bytes) -> None:
        if self.size == 0:
            for bom, encoding in _BOMS:
                if chunk.startswith(bom):
                    self.encoding = encoding
                    break
            self.wide = _is_wide(bytearray(chunk[:4]))
            self.decoder = codecs.getincrementaldecoder(self.encoding or "utf-8")()
        if len(self.head) < 65536:
            self.head += chunk[: 65536 - len(self.head)]
        if not self.wide:
            at = chunk.find(0)
            if at >= 0:
                raise _binary_refusal(self.size + at)
        self.digest.update(chunk)
        if self.cp1252_ok and any(b in chunk for b in _CP1252_UNDEFINED):
            self.cp1252_ok = False
        self._decode(chunk, final=False)
        self.size += len(chunk)

    def _decode(self, chunk: bytes, *, final: bool) -> None:
        if self.utf8_error is not None or self.decoder is None:
            return  # a single-byte encoding: the characters are the bytes
        try:
            text = self.decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            if self.encoding is not None:
                raise CorpusError(
                    f"the corpus starts with a {self.encoding} mark but is not "
                    f"{self.encoding}: {exc}"
                ) from None
            pending = len(self.decoder.getstate()[0])
            self.utf8_error = self.size - pending + exc.start
            return
        self.chars += len(text)
        if not self.has_text and text and not text.isspace():
            self.has_text = True

    def finish(self) -> tuple[str, str | None]:
        """(encoding, note), once every chunk was fed; refuses what read_corpus refuses."""
        if self.size == 0:
            raise CorpusError(
                f"the corpus {self.p} is empty", "give a text file with some text in it"
            )
        if not self.wide and _looks_binary(self.head):
            raise _binary_refusal(None)
        self._decode(b"", final=True)
        if self.encoding is not None:
            encoding, note = self.encoding, None
        elif self.utf8_error is None:
            encoding, note = "utf-8", None
        else:
            encoding = "cp1252" if self.cp1252_ok else "latin-1"
            note = (
                f"the corpus is not valid UTF-8 (byte {self.utf8_error}); read it as {encoding}. "
                "Convert it to UTF-8 if that is wrong."
            )
            self.chars = self.size
            self.has_text = not self.head.decode(encoding).isspace() or self._rescan(encoding)
        if not self.has_text:
            raise CorpusError(
                f"the corpus {self.p} holds only white space", "give a file with some text in it"
            )
        return encoding, note

    def _rescan(self, encoding: str) -> bool:
        """Whether a single-byte corpus has a character that is not white space (read again)."""
        with open(self.p, "rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                if not chunk.decode(encoding).isspace():
                    return True
        return False


def scan_corpus(
    path: str | Path, on_progress: ProgressCallback | None = None, *, remember: bool = True
) -> CorpusScan:
    """One pass over a regular file in 4 MiB chunks; CorpusError when it cannot be used.

    Bounded by ``stream_limit()`` (refused before a byte is read), whatever the file's size.
    A scan of the same unchanged file (path, size, inode, modification time) is taken from the
    cache folder instead of reading the file again; ``remember=False`` always reads.
    """
    p = Path(path).expanduser()
    _check_path(p)
    absolute = str(p.absolute())
    try:
        info = os.stat(p)
    except OSError as exc:
        raise _read_error(p, exc) from None
    if remember:
        known = _recall(absolute, info)
        if known is not None:
            return known
    limit = stream_limit()
    if info.st_size > limit:
        raise _too_big(p, info.st_size, limit)
    scanner = _Scanner(p)
    try:
        with open(p, "rb", buffering=0) as handle:
            while True:
                chunk = handle.read(READ_CHUNK)
                if not chunk:
                    break
                scanner.feed(chunk)
                if scanner.size > limit:
                    raise _too_big(p, scanner.size, limit)
                if on_progress is not None:
                    on_progress(scanner.size, max(info.st_size, scanner.size))
    except OSError as exc:
        raise _read_error(p, exc) from None
    encoding, note = scanner.finish()
    scan = CorpusScan(
        path=absolute,
        name=p.name,
        sha256=scanner.digest.hexdigest(),
        encoding=encoding,
        size=scanner.size,
        chars=scanner.chars,
        note=note,
    )
    if remember:
        _remember(scan, info)
    return scan


def recall_scan(path: str | Path) -> CorpusScan | None:
    """The remembered scan of this unchanged file, or None (nothing is read)."""
    p = Path(path).expanduser()
    try:
        info = os.stat(p)
    except OSError:
        return None
    return _recall(str(p.absolute()), info)


def iter_text(
    scan: CorpusScan,
    chunk_bytes: int = READ_CHUNK,
    on_progress: ProgressCallback | None = None,
) -> Iterator[str]:
    """The corpus' text, decoded chunk by chunk as the scan found it; checked by SHA-256 at the end
    (CorpusError if the file changed since it was scanned)."""
    p = Path(scan.path)
    decoder = codecs.getincrementaldecoder(scan.encoding)()
    digest = hashlib.sha256()
    done = 0
    try:
        handle = open(p, "rb", buffering=0)  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise _read_error(p, exc) from None
    try:
        while True:
            try:
                chunk = handle.read(chunk_bytes)
            except OSError as exc:
                raise _read_error(p, exc) from None
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
            try:
                text = decoder.decode(chunk, False)
            except UnicodeDecodeError:
                raise _changed(scan) from None
            if on_progress is not None:
                on_progress(done, scan.size)
            if text:
                yield text
        tail = decoder.decode(b"", True)
        if tail:
            yield tail
    finally:
        handle.close()
    if digest.hexdigest() != scan.sha256:
        _forget(scan.path)
        raise _changed(scan)


def _changed(scan: CorpusScan) -> CorpusError:
    return CorpusError(
        f"the corpus {scan.path} changed while termlm read it", "run the command again"
    )


def text_chunks(text: str, chunk_chars: int = READ_CHUNK) -> Iterator[str]:
    """A text held in memory, in chunks (for corpora read from a pipe)."""
    for start in range(0, len(text), chunk_chars):
        yield text[start : start + chunk_chars]


# --- the scans remembered, by path and file identity ---------------------------------------------


def _memo_path() -> Path:
    from termlm.tokencache import cache_dir

    return cache_dir() / _MEMO_FILE


def _identity(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_ino, info.st_dev, info.st_mtime_ns]


def _load_memo() -> dict[str, Any]:
    try:
        data = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recall(absolute: str, info: os.stat_result) -> CorpusScan | None:
    entry = _load_memo().get(absolute)
    if not isinstance(entry, dict) or entry.get("identity") != _identity(info):
        return None
    try:
        return CorpusScan(**entry["scan"])
    except (KeyError, TypeError):
        return None


def _remember(scan: CorpusScan, info: os.stat_result) -> None:
    memo = _load_memo()
    memo.pop(scan.path, None)
    memo[scan.path] = {"identity": _identity(info), "scan": asdict(scan)}
    while len(memo) > _MEMO_ENTRIES:
        memo.pop(next(iter(memo)))
    with contextlib.suppress(OSError):  # a read-only cache only costs a second scan
        atomic_write_text(_memo_path(), json.dumps(memo, indent=1))


def _forget(absolute: str) -> None:
    memo = _load_memo()
    if memo.pop(absolute, None) is not None:
        with contextlib.suppress(OSError):
            atomic_write_text(_memo_path(), json.dumps(memo, indent=1))
