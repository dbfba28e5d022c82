"""Tokenizers: the Keras-like word tokenizer, char and byte-level BPE round trips, JSON, errors."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.errors import ConfigError, CorpusError, TokenizerError
from termlm.tokenizers import Tokenizer, encode_array, fit_tokenizer, tokenizer_from_json
from termlm.tokenizers.bpe import BpeTokenizer, encode_chunked
from termlm.tokenizers.char import CharTokenizer
from termlm.tokenizers.word import WordTokenizer, join_words

TUTORIAL = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
)
MIXED = (
    TUTORIAL + "Ünïcödé wörds, Ελληνικά, русский, 漢字かな, emoji 🙂🚀 and tabs\tand  spaces.\n" * 3
)


@functools.cache
def bpe_tokenizer() -> BpeTokenizer:
    tokenizer = fit_tokenizer("bpe", MIXED * 4, vocab_size=300)
    assert isinstance(tokenizer, BpeTokenizer)
    return tokenizer


# --- word ---------------------------------------------------------------------------------------


def test_word_default_is_keras_tokenizer() -> None:
    tokenizer = fit_tokenizer("word", TUTORIAL)
    ids = tokenizer.encode("To be, or not to be, that is the question:")
    words = [tokenizer.token_text(i) for i in ids]
    assert words == ["to", "be", "or", "not", "to", "be", "that", "is", "the", "question"]
    assert tokenizer.decode(ids) == "to be or not to be that is the question"
    assert "'tis" in [tokenizer.token_text(i) for i in tokenizer.encode("Whether 'tis nobler")]
    # ids: <pad>, <unk>, then by count (to 4, the 3, be/or/of 2 in order of first appearance)
    assert [tokenizer.token_text(i) for i in range(7)] == [
        "<pad>", "<unk>", "to", "the", "be", "or", "of",
    ]  # fmt: skip
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.eos_id) == (0, 1, None)
    assert tokenizer.vocab_size == 2 + 26  # 26 distinct words in the four lines


def test_word_unknowns_and_max_vocab() -> None:
    tokenizer = fit_tokenizer("word", TUTORIAL, max_vocab=5)
    assert tokenizer.vocab_size == 5  # <pad> <unk> to the be
    assert tokenizer.encode("To the sea, be!") == [2, 3, 1, 4]
    text = "to the Sea, be nobler"
    spans = tokenizer.unknown_spans(text)
    assert [text[a:b] for a, b in spans] == ["Sea", "nobler"]
    assert tokenizer.decode([0, 2, 0, 1, 4]) == "to <unk> be"  # pad skipped


def test_word_lowercase_false_keeps_case() -> None:
    tokenizer = fit_tokenizer("word", TUTORIAL, lowercase=False)
    words = [tokenizer.token_text(i) for i in tokenizer.encode("To be, or Or")]
    assert words == ["To", "be", "or", "Or"]
    assert tokenizer.encode("TO") == [1]


SENTENCES = [
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
    "Hello, world! How are you?\n\nFine; thanks.",
    'He said "hello there" (quietly) and left.',
    "A well-known and/or long-lived word.",
]


@pytest.mark.parametrize("sentence", SENTENCES)
def test_word_keep_punctuation_round_trip(sentence: str) -> None:
    tokenizer = fit_tokenizer("word", sentence, punctuation="keep", lowercase=False)
    assert tokenizer.decode(tokenizer.encode(sentence)) == sentence


def test_word_keep_punctuation_tokens() -> None:
    tokenizer = fit_tokenizer("word", TUTORIAL, punctuation="keep")
    words = [tokenizer.token_text(i) for i in tokenizer.encode("To be, or not:\nto be")]
    assert words == ["to", "be", ",", "or", "not", ":", "\n", "to", "be"]


_WORD = st.text(alphabet="abcdefghijKLMNOPüéжか'", min_size=1, max_size=8).filter(
    lambda w: w.strip("'") != ""
)
_LINE = st.lists(
    st.tuples(_WORD, st.sampled_from(["", "", "", ",", ".", ";", ":", "!", "?"])),
    min_size=1,
    max_size=8,
).map(lambda pairs: " ".join(word + mark for word, mark in pairs))


@settings(max_examples=60, deadline=None)
@given(st.lists(_LINE, min_size=1, max_size=4).map("\n".join))
def test_word_keep_round_trip_property(text: str) -> None:
    tokenizer = fit_tokenizer("word", text, punctuation="keep", lowercase=False)
    ids = tokenizer.encode(text)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text
    assert tokenizer.unknown_spans(text) == []


def test_join_words_spacing() -> None:
    assert join_words(["a", "(", "b", ")", "c", "-", "d", "\n", '"', "e", '"', "f"]) == (
        'a (b) c-d\n"e" f'
    )


@settings(max_examples=60, deadline=None)
@given(corpus=st.text(min_size=1), text=st.text())
def test_word_ids_in_range_on_any_text(corpus: str, text: str) -> None:
    for punctuation in ("strip", "keep"):
        try:
            tokenizer = fit_tokenizer("word", corpus, punctuation=punctuation)
        except CorpusError:
            continue
        ids = tokenizer.encode(text)
        assert all(0 <= i < tokenizer.vocab_size for i in ids)
        assert ids.count(1) == len(tokenizer.unknown_spans(text))
        tokenizer.decode(ids)


# --- char ---------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(text=st.text(), extra=st.text())
def test_char_round_trip_on_corpus_characters(text: str, extra: str) -> None:
    tokenizer = fit_tokenizer("char", text + extra + "x")
    ids = tokenizer.encode(text)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert 1 not in ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.unknown_spans(text) == []
    assert encode_array(tokenizer, text).tolist() == ids


@settings(max_examples=100, deadline=None)
@given(corpus=st.text(min_size=1).filter(str.strip), text=st.text())
def test_char_unseen_characters_are_unknown(corpus: str, text: str) -> None:
    tokenizer = fit_tokenizer("char", corpus)
    ids = tokenizer.encode(text)
    assert len(ids) == len(text)
    assert [i == 1 for i in ids] == [c not in corpus for c in text]
    assert encode_array(tokenizer, text).tolist() == ids
    covered = {i for a, b in tokenizer.unknown_spans(text) for i in range(a, b)}
    assert covered == {i for i, c in enumerate(text) if c not in corpus}
    assert len(tokenizer.decode(ids)) == len(text)


def test_char_vocabulary_is_sorted_and_capped() -> None:
    tokenizer = fit_tokenizer("char", "banana band")
    assert [tokenizer.token_text(i) for i in range(tokenizer.vocab_size)] == [
        "<pad>", "<unk>", " ", "a", "b", "d", "n",
    ]  # fmt: skip
    capped = fit_tokenizer("char", "banana band", max_vocab=4)  # the two most frequent: a, n
    assert [capped.token_text(i) for i in range(capped.vocab_size)] == ["<pad>", "<unk>", "a", "n"]
    assert capped.decode(capped.encode("ban")) == "\ufffdan"


def test_char_lowercase() -> None:
    tokenizer = fit_tokenizer("char", "Hello", lowercase=True)
    assert tokenizer.decode(tokenizer.encode("HELLO")) == "hello"
    assert tokenizer.unknown_spans("HeLLo Z") == [(5, 7)]


# --- bpe ----------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_bpe_round_trips_any_text(text: str) -> None:
    tokenizer = bpe_tokenizer()
    ids = tokenizer.encode(text)
    assert all(0 < i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text
    assert tokenizer.unknown_spans(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "   leading and trailing   ",
        "\n\n\t\r\n",
        "漢字 🙂👍🏽 مرحبا",
        "<pad> is text",
        "a\x00b",
    ],
)
def test_bpe_round_trips_awkward_text(text: str) -> None:
    tokenizer = bpe_tokenizer()
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_bpe_specials_and_token_text() -> None:
    tokenizer = bpe_tokenizer()
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.eos_id) == (0, None, None)
    assert tokenizer.vocab_size == 300
    assert tokenizer.token_text(0) == "<pad>"
    assert tokenizer.decode([0, *tokenizer.encode("to be"), 0]) == "to be"
    assert "".join(tokenizer.token_text(i) for i in tokenizer.encode("to be or")) == "to be or"
    # a token holding part of a multi-byte character: a replacement character, no exception
    ids = tokenizer.encode("🦀")  # not in the corpus: split into pieces of its four bytes
    assert len(ids) >= 2
    assert tokenizer.decode(ids[:1]) == "\ufffd"
    assert tokenizer.token_text(ids[0]) == "\ufffd"
    assert tokenizer.decode(ids[:-1] + tokenizer.encode("a")) == "\ufffda"
    assert b"".join(tokenizer.token_bytes(i) for i in ids) == "🦀".encode()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab \n\tü.,", max_size=30), min_size=2, max_size=12))
def test_bpe_chunked_encode_matches_whole(lines: list[str]) -> None:
    tokenizer = bpe_tokenizer()
    text = "\n".join(lines)
    whole = list(tokenizer._hf.encode(text).ids)
    assert encode_chunked(tokenizer._hf, text, chunk_chars=8) == whole


def test_bpe_lowercase() -> None:
    tokenizer = fit_tokenizer("bpe", MIXED, lowercase=True, vocab_size=280)
    assert tokenizer.decode(tokenizer.encode("To BE")) == "to be"
    assert tokenizer_from_json(tokenizer.to_json()).decode(tokenizer.encode("OR")) == "or"


# --- JSON ---------------------------------------------------------------------------------------


def _fitted() -> list[Tokenizer]:
    return [
        fit_tokenizer("word", MIXED),
        fit_tokenizer("word", MIXED, punctuation="keep", lowercase=False, max_vocab=20),
        fit_tokenizer("char", MIXED),
        fit_tokenizer("char", MIXED, lowercase=True),
        bpe_tokenizer(),
    ]


@pytest.mark.parametrize("index", range(5))
def test_json_round_trip_gives_same_encodings(index: int) -> None:
    tokenizer = _fitted()[index]
    data = json.loads(json.dumps(tokenizer.to_json()))  # survives real JSON
    assert data["type"] == tokenizer.kind
    again = tokenizer_from_json(data)
    assert isinstance(again, Tokenizer)
    assert (again.kind, again.vocab_size, again.pad_id, again.unk_id, again.eos_id) == (
        tokenizer.kind,
        tokenizer.vocab_size,
        tokenizer.pad_id,
        tokenizer.unk_id,
        tokenizer.eos_id,
    )
    probe = MIXED + "unseen ∑ words ⚡"
    assert again.encode(probe) == tokenizer.encode(probe)
    assert again.decode(again.encode(probe)) == tokenizer.decode(tokenizer.encode(probe))
    assert again.to_json() == tokenizer.to_json()


def test_json_refusals_are_tokenizer_errors() -> None:
    word_json = fit_tokenizer("word", TUTORIAL).to_json()
    char_json = fit_tokenizer("char", TUTORIAL).to_json()
    bad = [
        ([], "must be a JSON object"),
        ({"type": "sentencepiece"}, "unknown tokenizer type"),
        ({**word_json, "vocab": ["<pad>", "<unk>", "to", "to"]}, "appears twice"),
        ({**word_json, "vocab": "to be"}, "'vocab' must be a list"),
        ({**word_json, "lowercase": "yes"}, "'lowercase' must be true or false"),
        ({**word_json, "eos_id": 10_000}, "outside the vocabulary"),
        ({**word_json, "version": 2}, "not supported"),
        ({**char_json, "vocab": ["<pad>", "<unk>", "ab"]}, "one character"),
        ({"type": "bpe", "hf": "{not json"}, "not valid JSON"),
    ]
    for data, message in bad:
        with pytest.raises(TokenizerError, match=message):
            tokenizer_from_json(data)  # type: ignore[arg-type]


def test_decode_refuses_ids_out_of_range() -> None:
    for tokenizer in _fitted():
        with pytest.raises(TokenizerError, match="outside the vocabulary"):
            tokenizer.decode([tokenizer.vocab_size])
        with pytest.raises(TokenizerError):
            tokenizer.token_text(-1)


# --- options and corpus errors ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
@pytest.mark.parametrize("text", ["", "  \n\t "])
def test_empty_corpus_is_a_corpus_error(kind: str, text: str) -> None:
    with pytest.raises(CorpusError, match="the corpus has no text"):
        fit_tokenizer(kind, text)


def test_option_errors() -> None:
    with pytest.raises(ConfigError, match="word, char, bpe"):
        fit_tokenizer("sentencepiece", TUTORIAL)
    with pytest.raises(ConfigError, match="at least 3"):
        fit_tokenizer("word", TUTORIAL, max_vocab=2)
    with pytest.raises(ConfigError, match="at least 3"):
        fit_tokenizer("char", TUTORIAL, vocab_size=1)
    with pytest.raises(ConfigError, match="at least 260"):
        fit_tokenizer("bpe", TUTORIAL, vocab_size=259)
    with pytest.raises(ConfigError, match="punctuation"):
        fit_tokenizer("char", TUTORIAL, punctuation="keep")
    with pytest.raises(ConfigError, match="punctuation mode"):
        fit_tokenizer("word", TUTORIAL, punctuation="drop")
    with pytest.raises(ConfigError, match="two different"):
        fit_tokenizer("word", TUTORIAL, max_vocab=10, vocab_size=20)
    with pytest.raises(CorpusError, match="no words"):
        fit_tokenizer("word", "... !!! ,,,")


def test_encode_array_is_int64() -> None:
    for tokenizer in _fitted():
        array = encode_array(tokenizer, TUTORIAL)
        assert array.dtype == np.int64
        assert array.tolist() == tokenizer.encode(TUTORIAL)


def test_importing_tokenizers_loads_neither_torch_nor_hf_tokenizers() -> None:
    code = (
        "import sys, termlm.tokenizers as t; "
        "t.tokenizer_from_json(t.fit_tokenizer('char', 'abc').to_json()); "
        "print('torch' in sys.modules, 'tokenizers' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_concrete_classes_follow_the_protocol() -> None:
    for cls in (WordTokenizer, CharTokenizer, BpeTokenizer):
        assert cls.kind in ("word", "char", "bpe")
    for tokenizer in _fitted():
        assert isinstance(tokenizer, Tokenizer)
