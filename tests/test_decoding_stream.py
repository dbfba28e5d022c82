"""Streaming text: multi-byte characters, word spacing, stop sequences across token boundaries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.decoding import build_plugin_manager, generate
from termlm.decoding.detok import StreamDecoder
from termlm.decoding.events import DoneEvent, TokenEvent
from termlm.decoding.stopping import StopMatcher
from termlm.decoding.testing import PieceTokenizer
from termlm.runtime.types import State, StepOutput


class ByteTokenizer:
    """Byte-level tokens (like a bpe's byte alphabet): decode replaces broken UTF-8."""

    vocab_size = 258
    pad_id = 0
    unk_id = 1
    eos_id: int | None = None

    def encode(self, text: str) -> list[int]:
        return [b + 2 for b in text.encode()]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i - 2 for i in ids if i >= 2).decode("utf-8", errors="replace")

    def token_text(self, token_id: int) -> str:
        return self.decode([token_id])


class WordTokenizer:
    vocab_size = 6
    pad_id = 0
    unk_id = 1
    eos_id: int | None = None
    words = ("<pad>", "<unk>", "the", "cat", "sat", "down")

    def encode(self, text: str) -> list[int]:
        return [self.words.index(w) if w in self.words else 1 for w in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids if i > 1)

    def token_text(self, token_id: int) -> str:
        return self.words[token_id]


@given(st.text(min_size=1, max_size=40))
def test_multibyte_text_streams_without_replacement_chars(text: str) -> None:
    tok = ByteTokenizer()
    decoder = StreamDecoder(tok)
    pieces = [decoder.push(i) for i in tok.encode(text)]
    assert "".join(pieces) == text
    if "\ufffd" not in text:
        assert all("\ufffd" not in p for p in pieces)


def test_word_pieces_get_their_spaces() -> None:
    tok = WordTokenizer()
    decoder = StreamDecoder(tok, tok.encode("the cat"))
    assert [decoder.push(i) for i in tok.encode("sat down")] == [" sat", " down"]
    fresh = StreamDecoder(tok)
    assert [fresh.push(i) for i in tok.encode("the cat")] == ["the", " cat"]


class ScriptModel:
    """Says ``script`` in order, whatever it is given: after reading c tokens, script[c - 1]."""

    stateful = True
    context = 10_000

    def __init__(self, script: Sequence[int], vocab_size: int) -> None:
        self.script = list(script)
        self.vocab_size = vocab_size

    def initial_state(self, batch: int) -> State:
        return {"n": np.zeros((batch, 1), dtype=np.float32)}

    def state_batch_axes(self) -> dict[str, int]:
        return {"n": 0}

    def step(self, tokens: np.ndarray, state: State) -> StepOutput:
        batch, length = tokens.shape
        logits = np.zeros((batch, length, self.vocab_size), dtype=np.float32)
        for t in range(length):
            for b in range(batch):
                c = int(state["n"][b, 0]) + t + 1
                logits[b, t, self.script[(c - 1) % len(self.script)]] = 10.0
        return StepOutput(logits, {"n": state["n"] + length})


PIECES = ["<pad>", "<unk>", "ab", "c", "de", "f", " ", "abc", "\n", "é"]


def expected_cut(tok: PieceTokenizer, script: list[int], stops: list[str]) -> tuple[str, str]:
    """Stop at the first token after which a stop string appears; cut before its start."""
    for n in range(1, len(script) + 1):
        text = tok.decode(script[:n])
        found = [text.find(s) for s in stops if s and s in text]
        if found:
            return text[: min(found)], "stop"
    return tok.decode(script), "length"


@settings(max_examples=60, deadline=None)
@given(
    script=st.lists(st.integers(2, len(PIECES) - 1), min_size=1, max_size=25),
    data=st.data(),
)
def test_stop_sequences_straddling_tokens(script: list[int], data: st.DataObject) -> None:
    tok = PieceTokenizer(PIECES)
    text = tok.decode(script)
    start = data.draw(st.integers(0, len(text) - 1))
    size = data.draw(st.integers(1, 6))
    other = data.draw(st.text(alphabet="abcdef \n", min_size=1, max_size=4))
    stops = [text[start : start + size], other]
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    events = list(
        generate(
            ScriptModel(script, tok.vocab_size),
            tok,
            "",
            registry=registry,
            strategy="greedy",
            max_new_tokens=len(script),
            stop=stops,
        )
    )
    done = events[-1]
    assert isinstance(done, DoneEvent)
    want_text, want_reason = expected_cut(tok, script, stops)
    assert (done.result.text, done.result.stop_reason) == (want_text, want_reason)
    streamed = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert streamed == want_text
    assert [e.token_id for e in events if isinstance(e, TokenEvent)] == done.result.token_ids


def test_stop_matcher_holds_back_a_possible_start() -> None:
    matcher = StopMatcher(["END"])
    first = TokenEvent(token_id=2, text="abE", prob=1.0, logprob=0.0)
    second = TokenEvent(token_id=3, text="Nx", prob=1.0, logprob=0.0)
    assert matcher.push(first) == []  # "E" could start "END"
    released = matcher.push(second)
    assert [e.text for e in released] == ["abE", "Nx"] and not matcher.hit
    matcher.push(TokenEvent(token_id=4, text="yE", prob=1.0, logprob=0.0))
    out = matcher.push(TokenEvent(token_id=5, text="ND!", prob=1.0, logprob=0.0))
    assert matcher.hit and [e.text for e in out] == ["y", ""]
