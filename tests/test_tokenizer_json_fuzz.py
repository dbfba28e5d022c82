"""Fuzzing ``tokenizer_from_json``: whatever it is given, it returns a working tokenizer or raises
``TokenizerError``, never any other exception."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from termlm.errors import TokenizerError
from termlm.tokenizers import KINDS, Tokenizer, fit_tokenizer, tokenizer_from_json

CORPUS = "To be, or not to be, that is the question:\nWhether 'tis nobler? Ünï 漢字 🙂\n" * 6
PROBE = "To be or not, 'tis the ünseen question 🙂 \n\t<pad> <unk> ∑"

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=15,
)


@functools.cache
def valid_descriptions() -> tuple[dict[str, Any], ...]:
    return (
        fit_tokenizer("word", CORPUS).to_json(),
        fit_tokenizer("word", CORPUS, punctuation="keep", lowercase=False).to_json(),
        fit_tokenizer("char", CORPUS).to_json(),
        fit_tokenizer("bpe", CORPUS, vocab_size=270).to_json(),
    )


def check_loads_or_refuses(data: Any) -> None:
    """The property: a TokenizerError, or a tokenizer that works on any text."""
    try:
        tokenizer = tokenizer_from_json(data)
    except TokenizerError as error:
        assert str(error)
        return
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.kind in KINDS
    assert tokenizer.pad_id == 0
    ids = tokenizer.encode(PROBE)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert isinstance(tokenizer.decode(ids), str)
    for token_id in {0, tokenizer.vocab_size - 1, *ids[:5]}:
        assert isinstance(tokenizer.token_text(token_id), str)
    for start, end in tokenizer.unknown_spans(PROBE):
        assert 0 <= start < end <= len(PROBE)
    again = tokenizer_from_json(json.loads(json.dumps(tokenizer.to_json())))
    assert again.encode(PROBE) == ids


def mutate(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """One random change somewhere inside ``value`` (a JSON-like structure), returned as new."""
    descend = depth == 0 or (depth < 6 and data.draw(st.integers(0, 7)) > 0)
    if isinstance(value, dict) and value and descend:
        key = data.draw(st.sampled_from(sorted(value)))
        value = dict(value)
        action = data.draw(st.sampled_from(["descend", "descend", "delete", "replace"]))
        if action == "delete":
            del value[key]
        elif action == "replace":
            value[key] = data.draw(JSON_VALUES)
        else:
            value[key] = mutate(value[key], data, depth + 1)
        return value
    if isinstance(value, list) and value and descend:
        index = data.draw(st.integers(0, len(value) - 1))
        value = list(value)
        action = data.draw(st.sampled_from(["descend", "delete", "duplicate", "swap", "replace"]))
        if action == "delete":
            del value[index]
        elif action == "duplicate":
            value.insert(data.draw(st.integers(0, len(value))), value[index])
        elif action == "swap":
            other = data.draw(st.integers(0, len(value) - 1))
            value[index], value[other] = value[other], value[index]
        elif action == "replace":
            value[index] = data.draw(JSON_VALUES)
        else:
            value[index] = mutate(value[index], data, depth + 1)
        return value
    if isinstance(value, str) and value.startswith("{") and data.draw(st.booleans()):
        # the embedded tokenizers JSON: change something inside it (unless an earlier change
        # has already broken it: then it is changed as text, below)
        try:
            inner = json.loads(value)
        except ValueError:
            pass
        else:
            return json.dumps(mutate(inner, data, depth + 1))
    if isinstance(value, str) and value and data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(value) - 1))
        return value[:cut] + data.draw(st.text(max_size=3)) + value[cut + 1 :]
    if isinstance(value, int) and not isinstance(value, bool) and data.draw(st.booleans()):
        return value + data.draw(st.integers(-3, 3))
    return data.draw(JSON_VALUES)


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES)
def test_arbitrary_json_values(data: Any) -> None:
    check_loads_or_refuses(data)


FIELDS = {
    "version": JSON_VALUES | st.just(1),
    "lowercase": JSON_VALUES | st.booleans(),
    "punctuation": JSON_VALUES | st.sampled_from(["strip", "keep"]),
    "eos_id": JSON_VALUES | st.integers(0, 5),
    "vocab": JSON_VALUES
    | st.lists(st.text(min_size=1, max_size=3), max_size=8).map(lambda v: ["<pad>", "<unk>", *v]),
    "hf": JSON_VALUES | JSON_VALUES.map(json.dumps),
}


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({"type": st.sampled_from(KINDS)}, optional=FIELDS))
def test_descriptions_with_the_right_keys(data: dict[str, Any]) -> None:
    check_loads_or_refuses(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 3), st.integers(1, 3), st.data())
def test_mutations_of_valid_descriptions(which: int, changes: int, data: st.DataObject) -> None:
    description: Any = copy.deepcopy(valid_descriptions()[which])
    for _ in range(changes):
        description = mutate(description, data)
    check_loads_or_refuses(description)


def test_valid_descriptions_load() -> None:
    for description in valid_descriptions():
        tokenizer = tokenizer_from_json(copy.deepcopy(description))
        assert tokenizer.to_json() == description


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 3), st.data())
def test_mutations_inside_the_embedded_bpe_json(changes: int, data: st.DataObject) -> None:
    description = dict(valid_descriptions()[3])
    spec: Any = json.loads(description["hf"])
    for _ in range(changes):
        spec = mutate(spec, data)
    check_loads_or_refuses({**description, "hf": json.dumps(spec)})
