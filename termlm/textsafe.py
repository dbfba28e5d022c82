"""Text from files and models made safe to print on a terminal.

A model's name, card or tokenizer, a plugin's description, a path, or generated text may hold
control characters: ``ESC [`` (CSI) and ``ESC ]`` (OSC) sequences that move the cursor, clear the
screen, set the window title or write to the clipboard; C1 controls (U+0080..U+009F, which some
terminals read as CSI); a carriage return that overwrites a line; bidirectional overrides that
make text read differently from what it is. These functions show each such character visibly
(``\\x1b``, ``\\x9b``, ``\\u202e``) and leave every printable character as it is.

    safe_text(generated)   # keeps newlines and tabs: a reply stays laid out
    safe_line(name)        # one line: newlines and tabs escaped too
    safe_markup(name)      # for rich: safe_line, and rich's own [markup] escaped
"""

from __future__ import annotations

import re

# Bidirectional controls (Trojan Source): shown escaped, like the C0/C1 controls.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029" + _BIDI
_UNSAFE_TEXT = re.compile(f"[{_CONTROLS}]")
_UNSAFE_LINE = re.compile(f"[{_CONTROLS}\t\n]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str) -> str:
    """Control characters shown as escapes; newlines, tabs and printable text unchanged."""
    return _UNSAFE_TEXT.sub(_escape, text)


def safe_line(text: str) -> str:
    """As :func:`safe_text`, and newlines and tabs escaped too: for names, paths, one-line fields."""
    return _UNSAFE_LINE.sub(_escape, text)


def safe_markup(text: str) -> str:
    """A one-line field for rich: control characters escaped, then rich's markup escaped."""
    from rich.markup import escape

    return escape(safe_line(text))


def is_safe(text: str) -> bool:
    """Whether printing ``text`` can do nothing but show it (newlines and tabs allowed)."""
    return _UNSAFE_TEXT.search(text) is None
