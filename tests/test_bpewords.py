"""BPE encoding of long texts word by word: exactly the ids of encoding the whole text at once."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.tokenizers import fit_tokenizer
from termlm.tokenizers.bpe import BpeTokenizer
from termlm.tokenizers.bpewords import _WORD_RE, WordCache, can_cache

TRAINING = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak. 'Tis true; we'll see what's done, I'd say, you've, I'm.\n"
    "Numbers 12345 and 3.14, tabs\tand  double  spaces   here\n"
    "ΣΟΦΟΣ σοφός — naïve café 日本語 ²³ Ⅻ\u00a0nbsp\u3000wide\n"
) * 40

# every ASCII character (\x1c-\x1f: white space to Python, not to the split), Unicode letters,
# digits, marks, and every Unicode white space with some look-alikes that are not
SPACES = "\x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000\u180e\u200b\ufeff"
ALPHABET = [chr(i) for i in range(128)] + list("éßÄÖüΣσςΑ日本一二²Ⅻ\u0301—“”İ" + SPACES)


@functools.cache
def tokenizer(lowercase: bool) -> BpeTokenizer:
    made = fit_tokenizer("bpe", TRAINING, vocab_size=400, lowercase=lowercase)
    assert isinstance(made, BpeTokenizer)
    return made


def whole(tok: BpeTokenizer, text: str) -> list[int]:
    return list(tok._hf.encode(text).ids)


@pytest.mark.parametrize("lowercase", [False, True])
def test_long_text_gives_the_ids_of_the_whole(lowercase: bool) -> None:
    tok = tokenizer(lowercase)
    text = TRAINING + "\x00\x1c\x1f\x0b\x0c\r\n  \t\n" + SPACES + "plain ascii line\n" * 3000
    assert len(text) > 32768  # long enough for the word path
    ids = tok.encode_array(text)
    assert ids.dtype == np.int64
    assert ids.tolist() == whole(tok, text)
    assert tok.encode_array(text).tolist() == ids.tolist()  # again, from the remembered words


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(ALPHABET), min_size=0, max_size=300).map("".join),
    st.booleans(),
)
def test_any_text_gives_the_ids_of_the_whole(text: str, lowercase: bool) -> None:
    tok = tokenizer(lowercase)
    cache = WordCache(tok._hf)
    assert cache.encode(text).tolist() == whole(tok, text)


def test_forgetting_words_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("termlm.tokenizers.bpewords.MAX_WORDS", 20)
    tok = tokenizer(False)
    cache = WordCache(tok._hf)
    for text in (TRAINING, TRAINING.upper(), TRAINING):
        assert cache.encode(text).tolist() == whole(tok, text)
        assert len(cache._index) <= len(set(_WORD_RE.findall(text)))  # forgotten, learnt again


def test_tokenizers_that_split_otherwise_keep_the_plain_path() -> None:
    spec = {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}, "normalizer": None}
    assert can_cache(spec)
    assert not can_cache({**spec, "pre_tokenizer": {**spec["pre_tokenizer"], "use_regex": False}})
    assert not can_cache({**spec, "normalizer": {"type": "NFKC"}})
