"""The validation split (the last part of the text, or every k-th block) and the prompt samples
start from."""

from __future__ import annotations

from termlm.runtime.evaluation import split_text

BLOCK_CHARS = 8192  # the interleaved split's blocks, cut at line ends
PROMPT_CHARS = 24
HEADING_CHARS = 16  # a line this short with no space is a name or heading: the prompt is all of it


def split_interleaved(
    text: str, val_fraction: float, block_chars: int = BLOCK_CHARS
) -> tuple[str, str]:
    """(train, validation): the text cut into blocks of about `block_chars` (at line ends where
    there is one), every k-th block held out, k = round(1 / val_fraction)."""
    every = max(2, round(1.0 / val_fraction))
    train: list[str] = []
    val: list[str] = []
    start, index = 0, 0
    while start < len(text):
        end = min(len(text), start + block_chars)
        if end < len(text):
            newline = text.rfind("\n", start + block_chars // 2, end)
            if newline != -1:
                end = newline + 1
        (val if index % every == every - 1 else train).append(text[start:end])
        start, index = end, index + 1
    if not val and train:  # a text of fewer than k blocks: hold out its last block
        val.append(train.pop())
    return "".join(train), "".join(val)


def describe_split(val_fraction: float, how: str) -> str:
    """The line that says which validation split is used."""
    percent = f"{val_fraction:.0%}"
    if how == "interleaved":
        every = max(2, round(1.0 / val_fraction))
        return (
            f"validation: every {every}th block of about {BLOCK_CHARS // 1024} KB ({percent}); "
            "--val-split tail holds out the end instead"
        )
    return (
        f"validation: the last {percent} of the text; "
        "--val-split interleaved if the text joins several kinds of text"
    )


def split_for_validation(text: str, val_fraction: float, how: str) -> tuple[str, str, str]:
    """(train, validation, a line saying which split was used)."""
    if how == "interleaved":
        train, val = split_interleaved(text, val_fraction)
    else:
        train, val = split_text(text, val_fraction)
    return train, val, describe_split(val_fraction, how)


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
