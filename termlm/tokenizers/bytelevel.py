"""The byte-level alphabet of GPT-2 style BPE: each of the 256 bytes drawn as one printable character.

Byte-level BPE tokens are strings over this alphabet; mapping them back gives the token's bytes.
"""

from __future__ import annotations


def byte_to_char() -> dict[int, str]:
    """Byte value -> its printable stand-in (printable Latin-1 bytes stand for themselves)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


BYTE_TO_CHAR = byte_to_char()
CHAR_TO_BYTE = {char: byte for byte, char in BYTE_TO_CHAR.items()}


def token_bytes(token: str) -> bytes | None:
    """The bytes a byte-level token stands for, or None if it uses characters outside the alphabet."""
    try:
        return bytes(CHAR_TO_BYTE[char] for char in token)
    except KeyError:
        return None
