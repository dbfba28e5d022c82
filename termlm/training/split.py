"""The validation split (the last part of the text, or every k-th block) and the prompt samples
start from."""

from __future__ import annotations

from termlm.runtime.evaluation import (
    BLOCK_CHARS,
    describe_split,
    split_interleaved,
    split_validation,
)

__all__ = [
    "BLOCK_CHARS",
    "line_start_prompt",
    "split_for_validation",
    "split_interleaved",
    "split_line",
]

PROMPT_CHARS = 24
HEADING_CHARS = 16  # a line this short with no space is a name or heading: the prompt is all of it


def split_line(val_fraction: float, how: str) -> str:
    """The line that says which validation split a run uses."""
    what = describe_split(val_fraction, how)
    if how == "interleaved":
        return (
            f"validation: {what} ({val_fraction:.0%}); --val-split tail holds out the end instead"
        )
    return (
        f"validation: {what} of the text; "
        "--val-split interleaved if the text joins several kinds of text"
    )


def split_for_validation(text: str, val_fraction: float, how: str) -> tuple[str, str, str]:
    """(train, validation, a line saying which split was used): the same cut as `termlm eval
    --split val --val-split HOW`."""
    train, val = split_validation(text, val_fraction, how)
    return train, val, split_line(val_fraction, how)


def line_start_prompt(text: str) -> str:
    """A prompt that starts at a line: the first line of `text` (after the first line break, so
    never mid-line) that holds a word, up to its first space, or the whole short line and its
    line break (a speaker's name, a heading)."""
    lines = text.split("\n")
    candidates = lines[1:] if len(lines) > 1 else lines
    for line in candidates:
        stripped = line.strip()
        if not stripped or not line[:1].strip():
            continue
        space = line.find(" ")
        if 0 < space <= PROMPT_CHARS:
            return line[: space + 1]
        if len(line) <= HEADING_CHARS:
            return line + "\n"
        return line[: PROMPT_CHARS // 3]  # a long line with no space (Chinese): its start
    return text[:PROMPT_CHARS]
