"""The valid-UTF-8 processor: byte-level BPE on Chinese text keeps to whole characters."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.decoding import StepInfo, build_plugin_manager, generate
from termlm.decoding.events import DoneEvent
from termlm.decoding.testing import TinyRNN, char_tokenizer
from termlm.decoding.utf8 import START, advance, state_after
from termlm.tokenizers.bpe import BpeTokenizer

REGISTRY = build_plugin_manager(entry_points=False, user_dir=False)
ValidUtf8 = next(c for c in REGISTRY.processor_classes() if c.name == "valid-utf8")  # a built-in
HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切"


def chinese_text(seed: int, sentences: int = 400) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        words = ["".join(rng.choices(HANZI[:200], k=rng.randint(1, 3))) for _ in range(6)]
        lines.append("".join(words) + "。")
    return "\n".join(lines) + "\n"


def replacement_chars(text: str) -> int:
    return text.count("\ufffd")


def test_chinese_bpe_generation_stays_valid_utf8_by_default() -> None:
    tokenizer = BpeTokenizer.fit(chinese_text(1), vocab_size=300)
    # a model that spreads its probability widely: without the mask it often splits characters
    model = TinyRNN(tokenizer.vocab_size, hidden=16, seed=3, sharpness=0.5)
    texts = {}
    for utf8_only in (True, False):
        done = [
            e
            for e in generate(
                model,
                tokenizer,
                "我们",
                registry=REGISTRY,
                strategy="sample",
                options={"temperature": 1.5, "utf8_only": utf8_only},
                max_new_tokens=200,
                seed=7,
            )
            if isinstance(e, DoneEvent)
        ]
        assert done and done[0].result.stop_reason == "length", done
        texts[utf8_only] = done[0].result.text
    assert replacement_chars(texts[False]) > 0  # the model does split characters unmasked
    assert replacement_chars(texts[True]) == 0
    ids = tokenizer.encode("我们" + texts[True])
    joined = b"".join(tokenizer.token_bytes(i) for i in ids)
    joined.decode("utf-8")  # strict: raises on anything invalid


def test_the_mask_is_inert_for_character_tokenizers() -> None:
    tok = char_tokenizer("abc")
    info = StepInfo(prompt_length=0, vocab_size=tok.vocab_size, eos_id=None, tokenizer=tok)
    logits = np.arange(2 * tok.vocab_size, dtype=np.float32).reshape(2, -1)
    out = ValidUtf8().process(logits, np.array([[3, 4], [5, 3]]), info)
    np.testing.assert_array_equal(out, logits)


def test_an_unfinished_character_bans_the_end_and_non_continuations() -> None:
    tokenizer = BpeTokenizer.fit(chinese_text(2), vocab_size=280)
    pieces = [tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)]
    lead = next(i for i, p in enumerate(pieces) if p == "我".encode()[:1])
    info = StepInfo(prompt_length=0, vocab_size=len(pieces), eos_id=0, tokenizer=tokenizer)
    logits = np.zeros((1, len(pieces)), dtype=np.float32)
    out = ValidUtf8().process(logits, np.array([[lead]]), info)
    allowed = {i for i in range(len(pieces)) if np.isfinite(out[0, i])}
    assert allowed, "some token continues the character"
    assert 0 not in allowed
    for i in allowed:
        assert 0x80 <= pieces[i][0] <= 0xBF  # a continuation byte comes next


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=12))
def test_the_reader_agrees_with_python_on_whole_texts(data: bytes) -> None:
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert (advance(START, data) == START) == valid


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=8), st.integers(0, 3))
def test_state_after_a_valid_prefix_accepts_its_completion(text: str, cut: int) -> None:
    data = text.encode("utf-8")
    head, rest = data[: max(0, len(data) - cut)], data[max(0, len(data) - cut) :]
    state = state_after(head[-4:])
    assert advance(state, rest) == START
