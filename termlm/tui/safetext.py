"""Text from a model or a file, made safe to show in the chat: no control character reaches the
terminal, so escapes cannot move the cursor, change colours or break a border.

Each unsafe character becomes exactly one visible character (the Unicode control pictures:
ESC shows as ``␛``), so offsets into the text stay valid for colouring token by token. Newlines
and tabs stay as they are (Rich lays them out itself).
"""

from __future__ import annotations

_TABLE = {code: 0x2400 + code for code in range(0x20) if code not in (0x09, 0x0A)}
_TABLE[0x7F] = 0x2421  # DEL
_TABLE.update({code: 0xFFFD for code in range(0x80, 0xA0)})  # C1 controls (CSI is 0x9b)
_TABLE.update({0x2028: 0x21B5, 0x2029: 0x00B6, 0x200E: 0xFFFD, 0x200F: 0xFFFD})
_TABLE.update({code: 0xFFFD for code in range(0x202A, 0x202F)})  # bidirectional overrides
_TABLE.update({code: 0xFFFD for code in range(0x2066, 0x206A)})


def safe_text(text: str) -> str:
    """``text`` with every control character replaced by one visible character."""
    return text.translate(_TABLE)


def safe_line(text: str) -> str:
    """Like ``safe_text``, for one-line places (titles, labels): a newline shows as ``⏎``."""
    return safe_text(text).replace("\n", "⏎").replace("\t", " ")
