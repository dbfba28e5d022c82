"""Text from files made safe to print: control characters shown, everything printable unchanged."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from termlm.textsafe import is_safe, safe_line, safe_markup, safe_text

ALLOWED = {"\n", "\t"}


def has_control(text: str, allowed: set[str]) -> bool:
    return any(
        (unicodedata.category(ch) == "Cc" and ch not in allowed) or ch in "\u202e\u2066\u2028"
        for ch in text
    )


@given(st.text())
def test_safe_text_never_holds_a_control_character(text: str) -> None:
    shown = safe_text(text)
    assert not has_control(shown, ALLOWED)
    assert is_safe(shown)
    assert shown.count("\n") == text.count("\n") and shown.count("\t") == text.count("\t")


@given(st.text())
def test_safe_line_is_one_line(text: str) -> None:
    shown = safe_line(text)
    assert not has_control(shown, set())
    assert "\n" not in shown and "\t" not in shown


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs"))))
def test_printable_text_is_unchanged(text: str) -> None:
    assert safe_text(text) == text
    assert safe_line(text) == text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_escaping_is_idempotent_once_safe(text: str) -> None:
    once = safe_text(text)
    assert safe_text(once) == once


def test_escape_sequences_are_shown() -> None:
    title = "\x1b]0;pwned\x07"
    clear = "\x1b[2J\x1b[H"
    assert safe_text(f"a{title}b") == "a\\x1b]0;pwned\\x07b"
    assert safe_text(clear) == "\\x1b[2J\\x1b[H"
    assert safe_text("\x9b31m") == "\\x9b31m"  # a C1 CSI
    assert safe_text("over\rwrite") == "over\\x0dwrite"
    assert safe_text("abc\u202edef") == "abc\\u202edef"
    assert safe_text("line one\n\tline two") == "line one\n\tline two"
    assert safe_line("line one\n\tline two") == "line one\\x0a\\x09line two"
    assert safe_text("thé 🙂 日本 👩\u200d💻") == "thé 🙂 日本 👩\u200d💻"  # emoji joiners stay


def test_safe_markup_escapes_rich_markup() -> None:
    from rich.console import Console

    console = Console(record=True, width=200, color_system=None)
    console.print(safe_markup("[bold red]x\x1b[31m[/]"))
    shown = console.export_text()
    assert "[bold red]x\\x1b[31m[/]" in shown and "\x1b" not in shown
