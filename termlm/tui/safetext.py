"""Text from a model or a file, made safe to show in the chat: no control character reaches the
terminal, so escapes cannot move the cursor, change colours or break a border.

One-line places (titles, model names, the chats list, the status line) use the shared
``termlm.textsafe.safe_line`` (visible escapes such as ``\\x1b``). Transcript text and token pieces
use ``safe_text`` here, which replaces each unsafe character by exactly one visible character (the
Unicode control pictures: ESC shows as ``␛``), so offsets into the text stay valid for colouring
token by token. Newlines and tabs stay as they are (Rich lays them out itself).
"""

from __future__ import annotations

from termlm.textsafe import safe_line

_TABLE = {code: 0x2400 + code for code in range(0x20) if code not in (0x09, 0x0A)}
_TABLE[0x7F] = 0x2421  # DEL
_TABLE.update({code: 0xFFFD for code in range(0x80, 0xA0)})  # C1 controls (CSI is 0x9b)
_TABLE.update({0x2028: 0x21B5, 0x2029: 0x00B6})  # line and paragraph separators
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_TABLE.update({code: 0xFFFD for code in _BIDI})  # bidirectional controls (Trojan Source)


def safe_text(text: str) -> str:
    """``text`` with every control character replaced by one visible character."""
    return text.translate(_TABLE)


__all__ = ["safe_line", "safe_text"]
