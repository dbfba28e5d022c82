"""`termlm score`: per-token surprisal streamed from a model, its totals, JSON and comparisons."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import TEXT, run, termlm, write_models
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.cli.score_view import ScoreTotals, stream_coloured
from termlm.cli.textspans import TokenSpans
from termlm.decoding.textscore import iter_token_scores
from termlm.decoding.trace import trace_tokens
from termlm.runtime.onnx_model import load_model

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SAMPLE = "hello fox, the lazy dog jumps.\nthe quick brown fox"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_models(tmp_path_factory.mktemp("score-models"), ("char", "word", "bpe"))


@pytest.mark.parametrize("kind", ["rnn", "memory", "window"])
def test_scores_match_the_chat_trace(models: dict[str, Path], kind: str) -> None:
    lm = load_model(models[f"char-{kind}"])
    ids = lm.tokenizer.encode(SAMPLE)
    scores = list(iter_token_scores(lm, ids, top_k=3))
    trace = trace_tokens(lm, [], ids, step_by_step=False, top_k=3)
    assert [s.id for s in scores] == ids
    np.testing.assert_allclose([s.surprisal for s in scores], trace.surprisal, atol=1e-4)
    np.testing.assert_allclose([s.entropy for s in scores], trace.entropy, atol=1e-4)
    for score, top in zip(scores, trace.top, strict=True):
        assert [i for i, _ in score.top] == [i for i, _ in top]
        assert [lp for _, lp in score.top] == sorted((lp for _, lp in score.top), reverse=True)


def test_chunk_size_does_not_change_a_recurrent_models_scores(models: dict[str, Path]) -> None:
    lm = load_model(models["char-rnn"])
    ids = lm.tokenizer.encode(SAMPLE)
    whole = [s.logprob for s in iter_token_scores(lm, ids, chunk=1000)]
    small = [s.logprob for s in iter_token_scores(lm, ids, chunk=3)]
    np.testing.assert_allclose(small, whole, atol=1e-4)


def test_a_bounded_memory_is_read_in_blocks_that_fit_it(models: dict[str, Path]) -> None:
    """A block longer than half the context would push its own start out of the memory: the
    scores of any requested chunk are those of the trace read in blocks of that size or less."""
    lm = load_model(models["char-memory"])
    ids = lm.tokenizer.encode(SAMPLE * 2)
    for chunk in (3, 1000):
        got = [s.surprisal for s in iter_token_scores(lm, ids, chunk=chunk)]
        size = min(chunk, lm.context // 2)
        want = trace_tokens(lm, [], ids, step_by_step=False, chunk=size).surprisal
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_scores_stream_chunk_by_chunk(models: dict[str, Path]) -> None:
    """The first token's score comes before the rest of a long text is read."""
    lm = load_model(models["char-rnn"])
    calls = 0
    real_step = lm.step

    def counting_step(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real_step(*args, **kwargs)

    lm.step = counting_step  # type: ignore[method-assign]
    ids = lm.tokenizer.encode(TEXT * 20)
    scores = iter_token_scores(lm, ids, chunk=8)
    first = next(scores)
    assert first.index == 0 and calls <= 2  # the empty state's read, and nothing more
    rest = list(scores)
    assert len(rest) == len(ids) - 1
    assert calls >= len(ids) // 8


def test_score_json_per_token_and_totals(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "score", str(models["char-memory"]), SAMPLE, "--json")
    assert code == 0, err
    data = json.loads(out)
    lm = load_model(models["char-memory"])
    ids = lm.tokenizer.encode(SAMPLE)
    assert data["model"] == lm.name and data["tokens"] == len(ids) == len(data["scores"])
    assert data["chars"] == len(SAMPLE)
    surprisals = [t["surprisal"] for t in data["scores"]]
    assert data["loss"] == pytest.approx(sum(surprisals) / len(surprisals))
    assert data["ppl"] == pytest.approx(math.exp(data["loss"]))
    assert data["bpc"] == pytest.approx(sum(surprisals) / len(SAMPLE) / math.log(2))
    for index, token in enumerate(data["scores"]):
        assert token["index"] == index and token["id"] == ids[index]
        assert token["surprisal"] == pytest.approx(-token["logprob"]) and token["logprob"] <= 0
        assert token["entropy"] >= 0 and len(token["top"]) == 5
        assert SAMPLE[token["start"] : token["end"]] == token["text"]
        assert {"id", "text", "logprob"} == set(token["top"][0])


def test_score_jsonl_streams_tokens_then_totals(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "score", str(models["word-rnn"]), "Hello, the fox!", "--jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["event"] for line in lines] == ["token"] * 3 + ["totals"]
    assert [line["text"] for line in lines[:3]] == ["hello", "the", "fox"]
    # the word model lowercases and drops punctuation; spans still point into the original text
    assert [(line["start"], line["end"]) for line in lines[:3]] == [(0, 5), (7, 10), (11, 14)]
    assert lines[-1]["tokens"] == 3 and lines[-1]["chars"] == len("Hello, the fox!")


def test_score_in_a_pipe_is_plain_lines_then_the_totals(
    models: dict[str, Path], tmp_path: Path
) -> None:
    proc = termlm("score", str(models["char-rnn"]), "hello fox", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not ANSI.search(proc.stdout) and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == len("hello fox") + 1
    assert lines[5].split() == [lines[5].split()[0], "␣"]  # the space, made visible
    assert "mean surprisal" in lines[-1] and "ppl" in lines[-1] and "bpc" in lines[-1]
    float(lines[0].split()[0])


def test_score_reads_stdin_and_files(models: dict[str, Path], tmp_path: Path) -> None:
    piped = termlm("score", str(models["char-rnn"]), "--json", cwd=tmp_path, stdin=SAMPLE)
    dashed = termlm("score", str(models["char-rnn"]), "-", "--json", cwd=tmp_path, stdin=SAMPLE)
    path = tmp_path / "text.txt"
    path.write_text(SAMPLE, encoding="utf-8")
    filed = termlm("score", str(models["char-rnn"]), "--file", str(path), "--json", cwd=tmp_path)
    results = [json.loads(p.stdout) for p in (piped, dashed, filed)]
    assert results[0]["tokens"] == len(SAMPLE)
    assert results[0] == results[1] == results[2]


def test_coloured_view_keeps_the_text(models: dict[str, Path]) -> None:
    lm = load_model(models["bpe-rnn"])
    text = "héllo, the fox ✓ jumps"
    totals = ScoreTotals(chars=len(text))
    out = io.StringIO()
    ids = lm.tokenizer.encode(text)
    stream_coloured(text, lm.tokenizer, iter_token_scores(lm, ids), totals, out)
    shown = out.getvalue()
    assert ANSI.search(shown)  # coloured
    assert ANSI.sub("", shown) == text + "\n"  # and nothing but the text
    assert totals.tokens == len(ids)


def test_compare_says_which_model_knows_the_text_better(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["score", str(models["char-rnn"]), SAMPLE, "--compare", str(models["word-rnn"])]
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    data = json.loads(out)
    first, second = data["models"]
    assert first["model"] == "tiny-rnn" and second["model"] == "tiny-rnn (2)"
    assert data["better"] == min(data["models"], key=lambda m: m["bpc"])["model"]
    assert first["chars"] == second["chars"] == len(SAMPLE)
    assert 0 < len(data["disagreements"]) <= 5
    gaps = [abs(d["bits"][0] - d["bits"][1]) for d in data["disagreements"]]
    assert gaps == sorted(gaps, reverse=True)
    for spot in data["disagreements"]:
        assert SAMPLE[spot["start"] : spot["end"]] == spot["text"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "knows this text better" in out and "where they disagree most" in out
    assert not ANSI.search(out)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["hello", "--file", "x.txt"], "not both"),
        (["hello", "--json", "--jsonl"], "choose one"),
        (["--file", "missing.txt"], "not found"),
        ([""], "empty"),
    ],
)
def test_score_refusals(
    models: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "score", str(models["char-rnn"]), *args)
    assert code == 1 and out == ""
    assert needle in err and "Traceback" not in err


def test_score_refuses_a_text_a_word_model_cannot_read(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "score", str(models["word-rnn"]), "!!! ...")
    assert code == 1 and "no token" in err and out == ""


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="the quick brown fox, THE Hello✓\n!é", min_size=1, max_size=60))
def test_spans_cover_the_text_in_order(models: dict[str, Path], text: str) -> None:
    """bpe: the spans tile the text exactly; char and word: increasing, inside the text."""
    for level in ("bpe", "char", "word"):
        tokenizer = load_model(models[f"{level}-rnn"]).tokenizer
        spans = TokenSpans(text, tokenizer)
        placed = [spans.next(i) for i in tokenizer.encode(text)]
        found = [s for s in placed if s is not None]
        ends = [0] + [end for _, end in found]
        assert all(start >= ends[k] for k, (start, _) in enumerate(found))
        assert all(0 <= a < b <= len(text) for a, b in found)
        if level == "bpe":
            assert "".join(text[a:b] for a, b in found) == text
        if level == "char":  # every known character is its own token
            assert all(b - a == 1 for a, b in found)
        if level == "word":  # every word placed where it stands, whatever its case
            ids = tokenizer.encode(text)
            assert len(found) == len(ids)
            for token, (a, b) in zip(ids, found, strict=True):
                if token != tokenizer.unk_id:
                    assert text[a:b].lower() == tokenizer.token_text(token)


def _word_bits(text: str, scores: list[dict[str, Any]]) -> dict[tuple[int, int], float]:
    """Bits per word, worked out the long way from `score --json`'s tokens and spans."""
    per_char = [0.0] * len(text)
    for token in scores:
        if token["start"] is None:
            continue
        width = token["end"] - token["start"]
        for i in range(token["start"], token["end"]):
            per_char[i] = token["surprisal"] / math.log(2) / width
    return {m.span(): sum(per_char[m.start() : m.end()]) for m in re.finditer(r"\S+", text)}


def test_compare_agrees_with_each_models_own_scores(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = ("The fox, the DOG and a quick brown fox. " * 3).strip()
    a, b = str(models["char-memory"]), str(models["word-rnn"])
    single = []
    for model in (a, b):
        code, out, err = run(capsys, "score", model, text, "--json")
        assert code == 0, err
        single.append(json.loads(out))
    code, out, err = run(capsys, "score", a, text, "--compare", b, "--json")
    assert code == 0, err
    compared = json.loads(out)
    for mine, alone in zip(compared["models"], single, strict=True):
        assert mine == {k: alone[k] for k in mine}
    words_a, words_b = (_word_bits(text, s["scores"]) for s in single)
    gaps = sorted((abs(words_a[w] - words_b[w]) for w in words_a), reverse=True)[:5]
    assert [abs(d["bits"][0] - d["bits"][1]) for d in compared["disagreements"]] == pytest.approx(
        gaps
    )
    for spot in compared["disagreements"]:
        span = (spot["start"], spot["end"])
        assert spot["bits"] == pytest.approx([words_a[span], words_b[span]])


def test_compare_streams_and_colours_on_a_terminal(models: dict[str, Path]) -> None:
    from termlm.cli.score_compare import CharCosts
    from termlm.cli.score_view import stream_comparison

    text = TEXT * 5
    first_lm, second_lm = load_model(models["char-rnn"]), load_model(models["bpe-rnn"])
    second_ids = second_lm.tokenizer.encode(text)
    read = 0

    def counted() -> Any:
        nonlocal read
        for score in iter_token_scores(second_lm, second_ids, chunk=8):
            read += 1
            yield score

    seen_at_first_output: list[int] = []

    class Terminal(io.StringIO):
        def write(self, s: str) -> int:
            if not seen_at_first_output:
                seen_at_first_output.append(read)
            return super().write(s)

    out = Terminal()
    first = CharCosts(
        text,
        first_lm.tokenizer,
        iter_token_scores(first_lm, first_lm.tokenizer.encode(text), chunk=8),
    )
    second = CharCosts(text, second_lm.tokenizer, counted())
    stream_comparison(text, ("a", "b"), first, second, out, colour=True)
    assert seen_at_first_output[0] < len(second_ids) // 2  # the text began before the end
    shown = out.getvalue()
    assert ANSI.search(shown)
    plain = ANSI.sub("", shown)
    assert plain.startswith(text) and "knows better" in plain and "bpc" in plain


class _Stdin(io.TextIOWrapper):
    def __init__(self, data: bytes, tty: bool = False) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_stdin_is_read_within_a_bound(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import termlm.cli.score as score_command

    monkeypatch.setattr(score_command, "MAX_STDIN_BYTES", 16)
    monkeypatch.setattr(sys, "stdin", _Stdin(b"hello fox " * 2))
    code, out, err = run(capsys, "score", str(models["char-rnn"]), "-")
    assert code == 1 and out == "" and "over" in err and "--file" in err
    monkeypatch.setattr(sys, "stdin", _Stdin(b"hello fox"))
    code, out, err = run(capsys, "score", str(models["char-rnn"]), "--json")
    assert code == 0 and json.loads(out)["chars"] == 9


def test_no_text_at_a_terminal_says_how_to_give_one(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setattr(sys, "stdin", _Stdin(b"", tty=True))
    code, out, err = run(capsys, "score", str(models["char-rnn"]))
    assert code == 1 and out == "" and "no text to score" in err and "--file" in err


def test_compare_as_json_lines_is_one_tagged_line(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["score", str(models["char-rnn"]), SAMPLE, "--compare", str(models["bpe-rnn"])]
    code, whole, _ = run(capsys, *args, "--json")
    code_l, lines, _ = run(capsys, *args, "--jsonl")
    assert code == code_l == 0 and len(lines.splitlines()) == 1
    assert json.loads(lines) == {"event": "comparison", **json.loads(whole)}


def test_control_characters_in_the_text_reach_no_terminal(models: dict[str, Path]) -> None:
    """A text that carries escape sequences (a title change, a bell) is shown, not obeyed."""
    from termlm.cli.score_view import stream_lines

    lm = load_model(models["bpe-rnn"])
    text = "hello \x1b]0;owned\x07 fox\x9b2J\rthe end"
    ids = lm.tokenizer.encode(text)
    coloured, lines = io.StringIO(), io.StringIO()
    stream_coloured(text, lm.tokenizer, iter_token_scores(lm, ids), ScoreTotals(), coloured)
    stream_lines(lm.tokenizer, iter_token_scores(lm, ids), ScoreTotals(), lines)
    for shown in (ANSI.sub("", coloured.getvalue()), lines.getvalue()):
        assert not any(c in shown for c in "\x1b\x07\x9b\r")
    assert ANSI.sub("", coloured.getvalue()) == "hello \\x1b]0;owned\\x07 fox\\x9b2J\\x0dthe end\n"
