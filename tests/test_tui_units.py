"""The chat's pure parts: prompts and speakers, the chat store, settings, option values."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from termlm.conversation.demo import FakeEngine
from termlm.conversation.engine import ModelInfo
from termlm.conversation.settings import Settings, load_settings, save_settings
from termlm.conversation.store import ChatStore, state_from_blob, state_to_blob
from termlm.conversation.tree import (
    Conversation,
    Message,
    build_prompt,
    ended_speech,
    split_speaker,
    stop_strings,
    to_markdown,
)
from termlm.decoding.options import OptionSpec, format_value
from termlm.errors import PluginError

# --------------------------------------------------------------------------- prompts


def test_continue_mode_feeds_the_text_as_is() -> None:
    assert build_prompt("continue", "Once upon\n") == "Once upon\n"
    assert stop_strings("continue") == ()


def test_dialogue_prompt_is_a_speech_then_the_next_speaker() -> None:
    assert build_prompt("dialogue", " Hello ", user_name="ROMEO") == "ROMEO:\nHello\n\n"
    fixed = build_prompt("dialogue", "Hi", user_name="ROMEO", bot_name="JULIET")
    assert fixed == "ROMEO:\nHi\n\nJULIET:\n"
    assert stop_strings("dialogue") == ("\n\n",)


def test_dialogue_closes_an_unfinished_speech_first() -> None:
    text = build_prompt("dialogue", "Hi", user_name="A", fresh=False, after_speech_end=False)
    assert text == "\n\nA:\nHi\n\n"
    assert build_prompt("dialogue", "Hi", user_name="A", fresh=False) == "A:\nHi\n\n"


def test_split_speaker() -> None:
    assert split_speaker("JULIET:\nAy me.") == ("JULIET", "Ay me.")
    assert split_speaker("First Citizen:\nSpeak, speak.\n\n") == ("First Citizen", "Speak, speak.")
    assert split_speaker("no speaker here") == (None, "no speaker here")
    assert split_speaker("Ay me.", bot_name="JULIET") == ("JULIET", "Ay me.")


def test_ended_speech() -> None:
    assert ended_speech(None)
    assert ended_speech(Message(role="model", text="x", stop_reason="stop"))
    assert not ended_speech(Message(role="model", text="x", fed="x", stop_reason="length"))


def test_conversation_states_and_exchanges() -> None:
    a = {"h": np.ones((1, 1, 2), np.float32)}
    conv = Conversation(
        messages=[
            Message(role="user", text="1"),
            Message(role="model", text="r1", state=a),
            Message(role="user", text="2"),
        ]
    )
    assert conv.last_state() is a
    assert conv.state_before(1) is None
    assert conv.last_exchange() == (2, -1)
    assert conv.user_prompts() == ["1", "2"]
    markdown = to_markdown(conv)
    assert markdown.startswith("# New chat") and "> r1" in markdown


# --------------------------------------------------------------------------- store


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
        hnp.arrays(
            st.sampled_from([np.float32, np.int64]), hnp.array_shapes(min_dims=0, max_dims=4)
        ),
        max_size=4,
    )
)
def test_state_blob_round_trip(state: dict[str, np.ndarray]) -> None:
    back = state_from_blob(state_to_blob(state))
    assert back is not None and set(back) == set(state)
    for name, value in state.items():
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == value.dtype


def test_object_states_are_refused() -> None:
    with pytest.raises(ValueError, match="numeric arrays"):
        state_to_blob({"x": np.array([object()], dtype=object)})
    assert state_to_blob(None) is None and state_from_blob(None) is None


def test_store_keeps_chats_messages_and_states(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "sub" / "chats.db")
    chat = store.create_chat("hello", "dialogue", "m", "ab" * 32)
    state = {"h": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}
    store.add_message(chat, 0, Message(role="user", text="hi", fed="A:\nhi\n\n", speaker="A"))
    reply = Message(
        role="model",
        text="yo",
        fed="B:\nyo",
        speaker="B",
        state=state,
        strategy="sample",
        options={"temperature": 0.5},
        seed=3,
        stop_reason="stop",
        tokens=5,
    )
    store.add_message(chat, 1, reply)
    conv, mode, name, sha = store.load_chat(chat)
    assert (mode, name, sha) == ("dialogue", "m", "ab" * 32)
    assert [m.text for m in conv.messages] == ["hi", "yo"]
    back = conv.messages[1]
    assert back.options == {"temperature": 0.5} and back.seed == 3 and back.speaker == "B"
    np.testing.assert_array_equal(back.state["h"], state["h"])  # type: ignore[index]

    store.delete_after(chat, conv.messages[0].id, 1)
    assert len(store.load_chat(chat)[0].messages) == 1
    store.rename_chat(chat, "renamed")
    assert [(c.title, c.messages) for c in store.list_chats()] == [("renamed", 1)]
    store.delete_chat(chat)
    assert store.list_chats() == []
    rows = sqlite3.connect(tmp_path / "sub" / "chats.db").execute("SELECT COUNT(*) FROM messages")
    assert rows.fetchone() == (0,)  # messages go with their chat
    with pytest.raises(KeyError):
        store.load_chat(chat)


def test_store_path_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from termlm.conversation.store import default_db_path

    monkeypatch.setenv("TERMLM_DATA_DIR", str(tmp_path))
    assert default_db_path() == tmp_path / "chats.db"


# --------------------------------------------------------------------------- settings


def test_settings_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "chat.json"
    assert load_settings(path) == Settings()
    settings = Settings(model="m", strategy="beam", options={"beam": {"num_beams": 2}}, seed=4)
    save_settings(settings, path)
    assert load_settings(path) == settings
    path.write_text("{not json")
    assert load_settings(path) == Settings()
    path.write_text(json.dumps({"max_tokens": "lots", "mode": "dialogue"}))
    loaded = load_settings(path)
    assert loaded.max_tokens == Settings().max_tokens and loaded.mode == "dialogue"


# --------------------------------------------------------------------------- option values
# One option model: the form reads and checks values with the plugins' own OptionSpec.

TEMPERATURE = OptionSpec("temperature", float, 1.0, 0.0, 10.0, min_inclusive=False)
TOP_K = OptionSpec("top_k", int, 0, 0, None)
FLAG = OptionSpec("flag", bool, False)
NORM = OptionSpec("norm", str, "a", choices=("a", "b"))


def test_ranges_are_drawn_as_they_are_checked() -> None:
    assert TEMPERATURE.describe_range() == "(0, 10]"
    assert TOP_K.describe_range() == ">= 0"
    assert NORM.describe_range() == "one of: a, b"
    assert FLAG.describe_range() == ""
    with pytest.raises(PluginError, match=r"\(0, 10\]"):
        TEMPERATURE.check("0")  # drawn as open at 0, and refused at 0


def test_form_values_are_parsed_by_the_option_itself() -> None:
    assert TEMPERATURE.check(" 0.7 ") == 0.7
    assert TOP_K.check("40") == 40
    assert FLAG.check("True") is True
    assert NORM.check("b") == "b"
    with pytest.raises(PluginError, match=r"temperature must be in \(0, 10\], got 50"):
        TEMPERATURE.check("50")
    with pytest.raises(PluginError, match="integer"):
        TOP_K.check("2.5")  # never saved as 2
    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(PluginError):
            TEMPERATURE.check(bad)
    with pytest.raises(PluginError):
        OptionSpec("x", float, 0.0, min=0.0).check("inf")  # open above, still finite
    with pytest.raises(PluginError, match="one of: a, b"):
        NORM.check("c")
    assert format_value(1.0) == "1" and format_value(0.25) == "0.25"
    assert format_value(True) == "true"


@given(st.floats(min_value=0.0, max_value=10.0, allow_nan=False, exclude_min=True))
def test_every_value_in_range_survives_the_form(value: float) -> None:
    assert TEMPERATURE.check(format_value(value)) == pytest.approx(value, rel=1e-5)


def test_fake_engine_validates_like_the_real_one() -> None:
    engine = FakeEngine()
    assert engine.validate("sample", {"temperature": "0.5"})["temperature"] == 0.5
    with pytest.raises(PluginError, match=r"unknown option .nope."):
        engine.validate("sample", {"nope": 1})
    info = ModelInfo("m", "lstm", "char", 1.23456)
    assert info.label() == "m · lstm char · 1.235"
