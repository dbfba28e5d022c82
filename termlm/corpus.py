"""Reading a text corpus from disk, with clear refusals. Standard library only."""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from termlm.errors import CorpusError

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
    sample = data[:65536]
    controls = sum(sample.count(b) for b in (*range(0, 9), *range(14, 27), *range(28, 32)))
    if sample and (0 in sample or controls > len(sample) // 10):
        raise CorpusError(
            "the corpus looks like binary data (it contains NUL bytes), not text",
            "give a plain text file (UTF-8 is best)",
        )
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

# on_progress(bytes_read, total_bytes), called after every chunk
ProgressCallback = Callable[[int, int], None]


def _read_bytes(p: Path, on_progress: ProgressCallback | None) -> tuple[bytearray, str]:
    """The file's bytes and their SHA-256, read in chunks into one preallocated buffer."""
    digest = hashlib.sha256()
    with open(p, "rb") as handle:
        total = max(p.stat().st_size, 0)
        buffer = bytearray(total)
        view = memoryview(buffer)
        done = 0
        while done < total:
            n = handle.readinto(view[done : done + READ_CHUNK])
            if not n:  # the file shrank while it was read
                break
            digest.update(view[done : done + n])
            done += n
            if on_progress is not None:
                on_progress(done, total)
        view.release()
        del buffer[done:]
        tail = handle.read()  # the file grew while it was read
        if tail:
            digest.update(tail)
            buffer += tail
    return buffer, digest.hexdigest()


def read_corpus(path: str | Path, on_progress: ProgressCallback | None = None) -> Corpus:
    """Read and decode a corpus file; CorpusError with advice when it cannot be used.

    The file is read in 4 MiB chunks (``on_progress`` hears of each); memory stays within a
    small multiple of the file's size: its bytes, then the decoded text.
    """
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"corpus not found: {p}", "check the path to the text file")
    if p.is_dir():
        raise CorpusError(f"{p} is a folder, not a text file", "point to one text file")
    try:
        data, sha256 = _read_bytes(p, on_progress)
    except OSError as exc:
        raise CorpusError(
            f"cannot read {p}: {exc.strerror or exc}", "check that the file is readable"
        ) from None
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
