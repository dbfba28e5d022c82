"""Pure pieces of the views: measures, colours, windows, the branch tree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("textual")

from termlm.conversation.tree import Conversation, Message
from termlm.tui.arena import parse_contestants, preset_name
from termlm.tui.inspect_screen import strip_window
from termlm.tui.measures import distinct, measure, repetition_rate
from termlm.tui.tokenview import bar, coloured, confidence_colour, top_units


def test_measures() -> None:
    assert distinct([1, 2, 3, 4], 1) == 1.0 and distinct([1, 1, 1, 1], 1) == 0.25
    assert distinct([1, 2, 1, 2], 2) == pytest.approx(2 / 3)
    assert repetition_rate([1, 2, 3, 4, 1, 2, 3, 4], 4) == pytest.approx(1 / 5)
    assert repetition_rate([1, 2, 3], 4) == 0.0
    m = measure([1, 2, 3, 4], [-1.0, -2.0, -3.0, -2.0], 0.5)
    assert m.mean_logprob == -2.0 and m.tokens_per_second == 8.0 and m.tokens == 4


@given(st.lists(st.integers(0, 5), max_size=40), st.integers(1, 4))
def test_distinct_and_repetition_are_shares(ids: list[int], n: int) -> None:
    assert 0.0 <= distinct(ids, n) <= 1.0
    assert 0.0 <= repetition_rate(ids, n) <= 1.0


def test_parse_contestants_and_presets() -> None:
    parsed = parse_contestants("greedy\n# a comment\n\nsample temperature=0.7 top_k=5")
    assert [c.label for c in parsed] == ["greedy", "sample temperature=0.7 top_k=5"]
    with pytest.raises(ValueError, match="line 2"):
        parse_contestants("greedy\nsample hot")
    assert preset_name("greedy", {"greedy": {}, "greedy (2)": {}}) == "greedy (3)"


def test_colours_bars_and_units() -> None:
    assert confidence_colour(0.0) != confidence_colour(1.0)
    assert bar(1.0, 4) == "████" and bar(0.0, 4) == "    " and len(bar(0.37)) == 24
    text = coloured("b c", ["a ", "b ", "c"], ["red", None, "green"], offset=2, selected=1)
    assert text.plain == "b c" and len(text.spans) == 2
    hidden = np.array([[0, 5, 1], [0, -5, 1], [0, 5, 1.5]], dtype=np.float16)
    assert top_units(hidden, 2) == [1, 2]


@given(st.lists(st.integers(1, 5), min_size=1, max_size=60), st.data())
def test_strip_window_holds_the_cursor_and_fits(widths: list[int], data: st.DataObject) -> None:
    selected = data.draw(st.integers(0, len(widths) - 1))
    lo, hi = strip_window(widths, selected, 20)
    assert lo <= selected < hi
    assert sum(widths[lo:hi]) <= max(20, widths[selected])


def msg(text: str, role: str = "model") -> Message:
    return Message(role=role, text=text, fed=text)


def test_branch_tree() -> None:
    chat = Conversation(messages=[msg("hi", "user"), msg("one"), msg("more", "user"), msg("two")])
    chat.branch_at(1)  # regenerate the first reply: the rest goes with the old branch
    assert [m.text for m in chat.messages] == ["hi"]
    chat.messages.append(msg("uno"))
    chat.messages.append(msg("again", "user"))
    chat.branch_at(3)  # a fork inside the second branch
    chat.messages.append(msg("dos"))
    assert chat.latest_fork() == 3 and chat.branch_label(1) == "branch 2/2"
    chat.switch_branch(1, 0)  # back to the first reply: the later fork goes away with branch 2
    assert [m.text for m in chat.messages] == ["hi", "one", "more", "two"]
    assert set(chat.forks) == {1}
    chat.switch_branch(1, 1)
    assert [m.text for m in chat.messages] == ["hi", "uno", "again", "dos"]
    assert set(chat.forks) == {1, 3} and chat.branch_label(3) == "branch 2/2"
    chat.switch_branch(3, 0)
    assert chat.messages[-1].text is None or chat.messages[3:] == []
    chat.drop_from(1)
    assert chat.messages == [chat.messages[0]] and chat.forks == {}


def test_a_long_reply_is_shown_around_the_cursor() -> None:
    from rich.text import Text

    from termlm.tui.inspect_screen import around_line

    text = Text("\n".join(f"line {i}" for i in range(30)))
    shown = around_line(text, 20, 5).plain.splitlines()
    assert shown == ["… 18 lines above", *(f"line {i}" for i in range(18, 23)), "… 7 lines below"]
    assert around_line(text, 0, 5).plain.splitlines()[:2] == ["line 0", "line 1"]
    assert around_line(text, 29, 5).plain.splitlines()[-1] == "line 29"
    assert around_line(Text("a\nb"), 1, 5).plain == "a\nb"
