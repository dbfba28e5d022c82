"""File sizes as termlm prints them: decimal units (1 MB = 1,000,000 bytes), as `ls --si` and
most download pages do. One function, so `termlm models`, `termlm export`, the model cards and the
docs give the same figure for the same file."""

from __future__ import annotations

KB = 1000
MB = 1000 * KB
GB = 1000 * MB


def file_size(n: int) -> str:
    """``n`` bytes as ``"512 B"``, ``"41 KB"``, ``"4.9 MB"`` or ``"1.2 GB"`` (decimal units)."""
    if n < KB:
        return f"{n} B"
    if n < MB:
        return f"{n / KB:.0f} KB"
    if n < GB:
        return f"{n / MB:.1f} MB"
    return f"{n / GB:.1f} GB"
