"""The generation loop's fast paths give what their general forms give.

* ``TokenPath`` reads as the tuple of its path's tokens (length, items, slices, equality).
* The streaming detokenizer and the beams' texts take a look-up per token for a tokenizer whose
  decode is a concatenation; the pieces are the ones the general path gives.
* A fixed-state session joins its recent tokens only when asked: they are still the last ones.
* A processor whose ``start`` returns None is left out of the steps, and the tokens do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.decoding import OptionSpec, StepInfo, build_plugin_manager, generate
from termlm.decoding.beamtext import BeamTexts
from termlm.decoding.contracts import Hypothesis
from termlm.decoding.detok import StreamDecoder
from termlm.decoding.events import DoneEvent, TokenEvent
from termlm.decoding.paths import TokenPath
from termlm.decoding.session import start_session
from termlm.decoding.testing import TinyRNN, char_tokenizer
from termlm.tokenizers import fit_tokenizer

TOK = char_tokenizer("ab c\ufffd", eos=True)


class _Node:
    __slots__ = ("depth", "parent", "token")

    def __init__(self, parent: _Node | None, token: int) -> None:
        self.parent, self.token = parent, token
        self.depth = 0 if parent is None else parent.depth + 1


class _General:
    """A tokenizer seen without its ``concatenative`` flag: the general paths run."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.vocab_size, self.pad_id, self.eos_id = inner.vocab_size, inner.pad_id, inner.eos_id

    def encode(self, text: str) -> list[int]:
        return list(self._inner.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._inner.decode(ids))

    def token_text(self, token_id: int) -> str:
        return str(self._inner.token_text(token_id))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=150), st.data())
def test_token_path_reads_as_its_tuple(tokens: list[int], data: st.DataObject) -> None:
    node = _Node(None, -1)
    for token in tokens:
        node = _Node(node, token)
    path, expected = TokenPath(node), tuple(tokens)
    assert len(path) == len(expected) and bool(path) == bool(expected)
    n = len(expected)
    for _ in range(5):
        i = data.draw(st.integers(-n - 2, n + 1))
        if -n <= i < n:
            assert TokenPath(node)[i] == expected[i]
        start = data.draw(st.integers(-n - 2, n + 2))
        stop = data.draw(st.integers(-n - 2, n + 2) | st.none())
        assert TokenPath(node)[start:stop] == expected[start:stop]
    assert path == expected and expected == path and path == list(expected)
    assert hash(path) == hash(expected) and tuple(path) == expected


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, TOK.vocab_size - 1), max_size=40), st.lists(st.integers(0, 6)))
def test_stream_decoder_pieces_match_the_general_path(ids: list[int], context: list[int]) -> None:
    fast = StreamDecoder(TOK, context)
    general = StreamDecoder(_General(TOK), context)  # type: ignore[arg-type]
    assert [fast.push(i) for i in ids] == [general.push(i) for i in ids]


def test_char_tokenizer_is_concatenative() -> None:
    tok = fit_tokenizer("char", "to be or not to be\n")
    ids = [*tok.encode("be or not"), 0, 1]
    assert tok.decode(ids) == "".join(tok.decode([i]) for i in ids)
    assert getattr(tok, "concatenative", False) is True


def test_beam_texts_by_piece_match_the_general_path() -> None:
    rng = np.random.default_rng(3)
    fast, general = BeamTexts(TOK), BeamTexts(_General(TOK))  # type: ignore[arg-type]
    beams = [_Node(None, -1)]
    for _ in range(60):
        rows = rng.integers(0, len(beams), size=3).tolist()
        beams = [_Node(beams[r], int(rng.integers(0, TOK.vocab_size))) for r in rows]
        hyps = [Hypothesis(TokenPath(b), -1.0, parent=r) for b, r in zip(beams, rows, strict=True)]
        assert [b.text for b in fast.update(hyps)] == [b.text for b in general.update(hyps)]
        assert next(b.text for b in fast.update(hyps)) == TOK.decode(list(TokenPath(beams[0])))


def test_recent_tokens_are_the_last_ones_read() -> None:
    model = TinyRNN(TOK.vocab_size, hidden=6, seed=1, context=10)
    session, _ = start_session(model, [3, 4, 5], None)
    read = [3, 4, 5]
    for step in range(37):
        token = 2 + step % 4
        session.feed([token])
        read.append(token)
        if step % 5 == 0:
            assert session.recent.tolist() == [read[-10:]]
    state = session.state(0)
    assert state["_recent"].tolist() == [read[-10:]]
    fork = session.select([0, 0])
    fork.feed([2, 3])
    assert fork.recent.tolist() == [[*read[-9:], 2], [*read[-9:], 3]]


class _Nothing:
    name: ClassVar[str] = "nothing"
    description: ClassVar[str] = "Has nothing to do for any model."
    options: ClassVar[tuple[OptionSpec, ...]] = ()
    started = 0

    def start(self, history: np.ndarray, info: StepInfo) -> None:
        type(self).started += 1
        return None

    def process(self, logits: np.ndarray, history: np.ndarray, info: StepInfo) -> np.ndarray:
        raise AssertionError("a processor whose tracker is None is never asked")


def test_a_processor_with_nothing_to_do_is_left_out() -> None:
    model = TinyRNN(TOK.vocab_size, hidden=6, seed=2, context=16)

    def tokens(with_nothing: bool, strategy: str) -> list[int]:
        registry = build_plugin_manager(entry_points=False, user_dir=False)
        if with_nothing:
            registry.add(_Nothing, "test")
        events = list(
            generate(model, TOK, "ab", registry=registry, strategy=strategy, seed=4,
                     max_new_tokens=20)
        )  # fmt: skip
        done = events[-1]
        assert isinstance(done, DoneEvent) and done.result.error is None
        assert any(isinstance(e, TokenEvent) for e in events)
        return done.result.token_ids

    for strategy in ("greedy", "sample", "beam", "lookahead"):
        assert tokens(True, strategy) == tokens(False, strategy)
    assert _Nothing.started >= 4
