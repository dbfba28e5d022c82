"""The protobuf wire format, read by hand: enough to walk an ONNX file without importing onnx.

Every function takes a buffer (bytes or an mmap) and a span, and raises :class:`Truncated` when
the bytes end inside a field or are not protobuf at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Truncated(Exception):
    """The bytes end inside a field: not (all of) a protobuf message."""


def varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    """(value, next position) of the varint at ``pos``."""
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise Truncated
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field_number, wire_type, value_or_start, stop) for each field in buf[start:end].

    Varints give their value (stop = -1); length-delimited fields give their span. Fixed-width
    fields are skipped over but still yielded, with their span.
    """
    pos = start
    while pos < end:
        key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise Truncated
        if wire == 0:
            value, pos = varint(buf, pos, end)
            yield number, wire, value, -1
        elif wire == 2:
            length, pos = varint(buf, pos, end)
            if pos + length > end:
                raise Truncated
            yield number, wire, pos, pos + length
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise Truncated
            yield number, wire, pos, pos + size
            pos += size
        else:  # groups (3, 4) are not used by ONNX; 6 and 7 do not exist
            raise Truncated
