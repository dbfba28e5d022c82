"""Reading a text corpus from disk, with clear refusals. Standard library only."""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from termlm.errors import ConfigError, CorpusError

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class Corpus:
    text: str
    name: str
    sha256: str
    encoding: str  # how the bytes were decoded
    note: str | None = None  # set when a fallback encoding was used
    length: int | None = None  # characters, when the text is read in chunks and not held here

    @property
    def chars(self) -> int:
        """How many characters the corpus has."""
        return len(self.text) if self.length is None else self.length


def _looks_binary(sample: bytes | bytearray) -> bool:
    """A NUL byte, or more than one byte in ten a control character other than white space."""
    controls = sum(sample.count(b) for b in (*range(0, 9), *range(14, 27), *range(28, 32)))
    return bool(sample) and (0 in sample or controls > len(sample) // 10)


def decode_bytes(data: bytes | bytearray) -> tuple[str, str, str | None]:
    """Decode corpus bytes: BOM, then UTF-8, then Windows-1252, then Latin-1 (never fails).

    Returns (text, encoding, note); refuses data that looks binary.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding, None
            except UnicodeDecodeError as exc:
                raise CorpusError(
                    f"the corpus starts with a {encoding} mark but is not {encoding}: {exc}"
                ) from None
    if _looks_binary(data[:_SNIFF]):
        raise _binary_refusal(None)
    try:
        return data.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError as exc:
        position = exc.start
    for fallback in ("cp1252", "latin-1"):
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        note = (
            f"the corpus is not valid UTF-8 (byte {position}); read it as {fallback}. "
            "Convert it to UTF-8 if that is wrong."
        )
        return text, fallback, note
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


READ_CHUNK = 1 << 22  # bytes read at a time (4 MiB)
MIB = 1 << 20
DEFAULT_MAX_MB = 512  # the most termlm reads of one corpus, unless TERMLM_MAX_CORPUS_MB says more
MAX_ENV = "TERMLM_MAX_CORPUS_MB"
_SNIFF = 65536  # bytes looked at to tell text from binary data

# on_progress(bytes_read, total_bytes), called after every chunk; for a pipe, a FIFO or a device
# (whose size is unknown) total_bytes is the limit
ProgressCallback = Callable[[int, int], None]


def max_corpus_bytes() -> int:
    """The most bytes one corpus may have: DEFAULT_MAX_MB MiB, or TERMLM_MAX_CORPUS_MB."""
    raw = os.environ.get(MAX_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_MB * MIB
    try:
        megabytes = int(raw)
    except ValueError:
        megabytes = 0
    if megabytes < 1:
        raise ConfigError(
            f"{MAX_ENV} must be a whole number of megabytes (1 or more), got {raw!r}",
            f"for example {MAX_ENV}={DEFAULT_MAX_MB * 4}, or unset it for {DEFAULT_MAX_MB}",
        )
    return megabytes * MIB


def _mb(n: int) -> str:
    return f"{n / MIB:,.0f}" if n >= 10 * MIB else f"{n / MIB:,.1f}"


def _binary_refusal(offset: int | None) -> CorpusError:
    where = "" if offset is None else f", the first at byte {offset:,}"
    return CorpusError(
        f"the corpus looks like binary data (it contains NUL bytes{where}), not text",
        "give a plain text file (UTF-8 is best)",
    )


class _BinaryCheck:
    """Refuse binary data as soon as it is seen, not after the whole input is read.

    Every new chunk is searched for a NUL byte (text has none, unless it is UTF-16 or UTF-32
    with a byte-order mark); the first 64 KiB also get decode_bytes's test of control bytes.
    """

    def __init__(self) -> None:
        self.sniffed = False

    def feed(self, data: bytearray, start: int, end: int) -> None:
        """Check data[start:end], the newest chunk of the input read into data[:end]."""
        if not _is_wide(data):
            at = data.find(0, start, end)
            if at >= 0:
                raise _binary_refusal(at)
        if end >= _SNIFF:
            self.finish(data, end)

    def finish(self, data: bytearray, end: int) -> None:
        """The control-byte test, once, on the input's first 64 KiB (of data[:end])."""
        if not self.sniffed and not _is_wide(data):
            self.sniffed = True
            if _looks_binary(data[: min(end, _SNIFF)]):
                raise _binary_refusal(None)


def _is_wide(data: bytearray) -> bool:
    return any(data.startswith(bom) for bom, enc in _BOMS if enc in ("utf-16", "utf-32"))


def _too_big(p: Path, size: int, limit: int) -> CorpusError:
    return CorpusError(
        f"the corpus {p} is {_mb(size)} MB, over the {_mb(limit)} MB that termlm reads "
        "(refused before reading it)",
        f"use a smaller file, or raise the limit: {MAX_ENV}={-(-size // MIB)}",
    )


def _endless(p: Path, limit: int) -> CorpusError:
    return CorpusError(
        f"{p} is not a regular file (a pipe, FIFO or device) and gave more than "
        f"{_mb(limit)} MB, the most termlm reads; it was read no further",
        f"save the text to a file first, or raise the limit: {MAX_ENV}={2 * limit // MIB}",
    )


class _Reader:
    """Bytes read chunk by chunk into one buffer, hashed and checked for binary data as they come."""

    def __init__(self, p: Path, limit: int, on_progress: ProgressCallback | None) -> None:
        self.p = p
        self.limit = limit
        self.on_progress = on_progress
        self.digest = hashlib.sha256()
        self.check = _BinaryCheck()
        self.buffer = bytearray()

    def read_regular(self, handle: BinaryIO, size: int) -> None:
        """A regular file of ``size`` bytes: into a buffer allocated once (no regrowth)."""
        if size > self.limit:
            raise _too_big(self.p, size, self.limit)
        self.buffer = bytearray(size)
        view = memoryview(self.buffer)
        done = 0
        try:
            while done < size:
                n = handle.readinto(view[done : done + READ_CHUNK])  # type: ignore[attr-defined]
                if not n:  # the file shrank while it was read
                    break
                self.check.feed(self.buffer, done, done + n)
                self.digest.update(view[done : done + n])
                done += n
                if self.on_progress is not None:
                    self.on_progress(done, size)
        finally:
            view.release()
        del self.buffer[done:]
        self.read_rest(handle, regular=True)  # the file grew while it was read

    def read_rest(self, handle: BinaryIO, *, regular: bool = False) -> None:
        """Whatever is left, chunk by chunk, refused once past the limit."""
        while True:
            chunk = handle.read(min(READ_CHUNK, self.limit + 1 - len(self.buffer)))
            if not chunk:
                break
            start = len(self.buffer)
            self.buffer += chunk
            self.check.feed(self.buffer, start, len(self.buffer))
            if len(self.buffer) > self.limit:
                if regular:
                    raise _too_big(self.p, len(self.buffer), self.limit)
                raise _endless(self.p, self.limit)
            self.digest.update(chunk)
            if self.on_progress is not None and not regular:
                self.on_progress(len(self.buffer), self.limit)
        self.check.finish(self.buffer, len(self.buffer))


def read_corpus(path: str | Path, on_progress: ProgressCallback | None = None) -> Corpus:
    """Read and decode a corpus file; CorpusError with advice when it cannot be used.

    Bounded: a regular file over ``max_corpus_bytes()`` is refused before a byte is read; a pipe,
    FIFO or device is read in 4 MiB chunks and refused once it gives more than that. Binary data
    (a NUL byte) is refused at the chunk where it appears. Ctrl-C works between chunks.
    ``on_progress`` hears of each chunk. Memory stays within a small multiple of the input's size:
    its bytes, then the decoded text.
    """
    p = Path(path)
    reader = _Reader(p, max_corpus_bytes(), on_progress)
    if not p.exists():
        raise CorpusError(f"corpus not found: {p}", "check the path to the text file")
    if p.is_dir():
        raise CorpusError(f"{p} is a folder, not a text file", "point to one text file")
    try:
        with open(p, "rb", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode):
                reader.read_regular(handle, info.st_size)
            else:
                reader.read_rest(handle)
    except OSError as exc:
        raise CorpusError(
            f"cannot read {p}: {exc.strerror or exc}", "check that the file is readable"
        ) from None
    data, sha256 = reader.buffer, reader.digest.hexdigest()
    del reader
    if not data:
        raise CorpusError(f"the corpus {p} is empty", "give a text file with some text in it")
    text, encoding, note = decode_bytes(data)
    del data
    if not text.strip():
        raise CorpusError(
            f"the corpus {p} holds only white space", "give a file with some text in it"
        )
    return Corpus(
        text=text,
        name=p.name,
        sha256=sha256,
        encoding=encoding,
        note=note,
    )
