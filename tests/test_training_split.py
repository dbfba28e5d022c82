"""The validation split and the prompt samples start from (pure text functions)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.training.split import line_start_prompt, split_for_validation, split_interleaved


def test_interleaved_split_holds_out_blocks_from_everywhere() -> None:
    lines = [f"line {k:04d} " + "word " * 15 + "\n" for k in range(1000)]
    text = "".join(lines)
    train, val = split_interleaved(text, 0.1, block_chars=2000)
    assert 0.05 < len(val) / len(text) < 0.15
    assert len(train) + len(val) == len(text)
    held = [int(line.split()[1]) for line in val.splitlines()]  # blocks are cut at line ends
    assert all(line in lines for line in val.splitlines(keepends=True))
    assert min(held) < 300 and max(held) > 700  # from the start of the text to its end


def test_split_says_which_is_used() -> None:
    text = "abc\n" * 1000
    assert "last 10%" in split_for_validation(text, 0.1, "tail")[2]
    assert "every 10th block" in split_for_validation(text, 0.1, "interleaved")[2]


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=3000), st.floats(0.05, 0.5))
def test_interleaved_split_keeps_every_character(text: str, fraction: float) -> None:
    train, val = split_interleaved(text, fraction, block_chars=64)
    assert sorted(train + val) == sorted(text)
    assert val


def test_prompt_starts_at_a_line() -> None:
    val = "pared for the battle\nROMEO:\nWhat say you\n"
    assert line_start_prompt(val) == "ROMEO:\n"
    code = "    x = 1\n\ndef main(argv):\n    pass\n"
    assert line_start_prompt(code) == "def "
    chinese = "半句\n我们今天去学校看看老师和同学们好不好呢\n"
    assert line_start_prompt(chinese) == "我们今天去学校看看"[:8]
