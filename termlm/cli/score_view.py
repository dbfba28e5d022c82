"""What `termlm score` prints: the text coloured by surprisal, token lines, JSON, a comparison.

Printing only; the numbers come from termlm.decoding.textscore.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from termlm.cli.textspans import TokenSpans
from termlm.decoding.textscore import LN2, ScoreTotals, TokenScore

HIGH_NATS = 6.0  # surprisal from which a token is shown fully red
_SCALE = ("#4caf50", "#9bc53d", "#d8b43c", "#e0803a", "#d64545")  # expected ... surprising


def surprise_style(nats: float) -> str:
    """Green when expected, red from HIGH_NATS up (the chat's score view uses the same scale)."""
    x = min(max(nats, 0.0), HIGH_NATS) / HIGH_NATS
    return "bold " + _SCALE[min(int(x * len(_SCALE)), len(_SCALE) - 1)]


def visible(piece: str) -> str:
    """A token on one line: spaces, tabs and line breaks made visible."""
    return piece.replace("\n", "⏎").replace("\t", "⇥").replace(" ", "␣") or "∅"


def token_json(score: TokenScore, tokenizer: Any, span: tuple[int, int] | None) -> dict[str, Any]:
    return {
        "index": score.index,
        "id": score.id,
        "text": tokenizer.token_text(score.id),
        "logprob": score.logprob,
        "surprisal": score.surprisal,
        "entropy": score.entropy,
        "top": [{"id": i, "text": tokenizer.token_text(i), "logprob": lp} for i, lp in score.top],
        "start": span[0] if span else None,
        "end": span[1] if span else None,
    }


def summary_line(name: str, totals: ScoreTotals) -> str:
    if not totals.tokens:
        return f"{name}: nothing to score"
    return (
        f"{name}: {totals.tokens} tokens, {totals.chars} chars: mean surprisal "
        f"{totals.loss:.3f} nats/token  ppl {totals.ppl:.2f}  bpc {totals.bpc:.3f}"
    )


def stream_coloured(
    text: str, tokenizer: Any, scores: Iterable[TokenScore], totals: ScoreTotals, out: IO[str]
) -> None:
    """The text as it is scored, each token in its colour (ANSI), then a line break."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, force_terminal=True, highlight=False, soft_wrap=True)
    spans = TokenSpans(text, tokenizer)
    at = 0
    for score in scores:
        totals.add(score)
        span = spans.next(score.id)
        if span is None:
            continue
        start, end = span
        piece = Text(text[at:start])
        piece.append(text[start:end], style=surprise_style(score.surprisal))
        console.print(piece, end="")
        out.flush()
        at = end
    console.print(Text(text[at:]), end="")
    if not text.endswith("\n"):
        console.print()


def stream_lines(
    tokenizer: Any, scores: Iterable[TokenScore], totals: ScoreTotals, out: IO[str]
) -> None:
    """One line per token, for pipes: surprisal (nats), then the token made visible."""
    for score in scores:
        totals.add(score)
        out.write(f"{score.surprisal:8.3f}  {visible(tokenizer.token_text(score.id))}\n")


def stream_jsonl(
    text: str,
    tokenizer: Any,
    scores: Iterable[TokenScore],
    totals: ScoreTotals,
    out: IO[str],
) -> None:
    """One JSON object per token, one per line, as they are scored."""
    spans = TokenSpans(text, tokenizer)
    for score in scores:
        totals.add(score)
        record = {"event": "token", **token_json(score, tokenizer, spans.next(score.id))}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()


def collect_json(
    text: str, tokenizer: Any, scores: Iterable[TokenScore], totals: ScoreTotals
) -> list[dict[str, Any]]:
    spans = TokenSpans(text, tokenizer)
    rows = []
    for score in scores:
        totals.add(score)
        rows.append(token_json(score, tokenizer, spans.next(score.id)))
    return rows


# --------------------------------------------------------------------------- comparison


@dataclass
class CharBits:
    """Bits each character cost one model: a token's surprisal spread over its characters."""

    bits: list[float]
    totals: ScoreTotals = field(default_factory=ScoreTotals)


def char_bits(text: str, tokenizer: Any, scores: Iterator[TokenScore]) -> CharBits:
    result = CharBits(bits=[math.nan] * len(text))
    result.totals.chars = len(text)
    spans = TokenSpans(text, tokenizer)
    for score in scores:
        result.totals.add(score)
        span = spans.next(score.id)
        if span is None:
            continue
        start, end = span
        share = score.surprisal / LN2 / (end - start)
        for i in range(start, end):
            result.bits[i] = share
    return result


@dataclass(frozen=True)
class Disagreement:
    start: int
    end: int
    text: str
    bits: tuple[float, float]  # what the span cost each model

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "bits": list(self.bits)}


def word_spans(text: str) -> list[tuple[int, int]]:
    import re

    return [m.span() for m in re.finditer(r"\S+", text)]


def disagreements(text: str, a: CharBits, b: CharBits, top: int = 5) -> list[Disagreement]:
    """The words whose cost differs most between the two models, largest difference first."""
    found = []
    for start, end in word_spans(text):
        bits_a = sum(x for x in a.bits[start:end] if not math.isnan(x))
        bits_b = sum(x for x in b.bits[start:end] if not math.isnan(x))
        found.append(Disagreement(start, end, text[start:end], (bits_a, bits_b)))
    found.sort(key=lambda d: -abs(d.bits[0] - d.bits[1]))
    return [d for d in found[:top] if abs(d.bits[0] - d.bits[1]) > 0]


DIFF_BITS = 4.0  # a difference (bits per character) shown at full strength
_FIRST = ("#9ecae1", "#4292c6", "#08519c")  # the first model knows better: blues
_SECOND = ("#fdae6b", "#f16913", "#a63603")  # the second model knows better: oranges


def diff_style(a_bits: float, b_bits: float) -> str | None:
    """Blue where the first model is less surprised, orange where the second is; None if close."""
    if math.isnan(a_bits) or math.isnan(b_bits):
        return None
    d = b_bits - a_bits
    if abs(d) < 0.25:
        return None
    scale = _FIRST if d > 0 else _SECOND
    level = min(int(abs(d) / DIFF_BITS * len(scale)), len(scale) - 1)
    return "bold " + scale[level]


def print_comparison(
    text: str, names: tuple[str, str], a: CharBits, b: CharBits, out: IO[str], colour: bool
) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(
        file=out, force_terminal=colour, no_color=not colour, highlight=False, soft_wrap=True
    )
    if colour:
        body = Text(text)
        for i in range(len(text)):
            style = diff_style(a.bits[i], b.bits[i])
            if style:
                body.stylize(style, i, i + 1)
        console.print(body, end="" if text.endswith("\n") else "\n")
        console.print(
            Text.assemble(
                ("blue", "bold #4292c6"),
                f": {names[0]} knows better, ",
                ("orange", "bold #f16913"),
                f": {names[1]} knows better",
            )
        )
    for name, bits in zip(names, (a, b), strict=True):
        console.print(summary_line(name, bits.totals))
    better = verdict(names, a.totals, b.totals)
    if better:
        console.print(better)
    spots = disagreements(text, a, b)
    if spots:
        console.print(f"where they disagree most (bits: {names[0]} / {names[1]}):")
        for d in spots:
            console.print(f"  {d.bits[0]:7.2f} / {d.bits[1]:<7.2f} {visible(d.text)}")


def verdict(names: tuple[str, str], a: ScoreTotals, b: ScoreTotals) -> str:
    if not (a.tokens and b.tokens):
        return ""
    if math.isclose(a.bpc, b.bpc, rel_tol=1e-9):
        return "both models know this text equally well"
    best, worst = (0, 1) if a.bpc < b.bpc else (1, 0)
    values = (a.bpc, b.bpc)
    return (
        f"{names[best]} knows this text better: {values[best]:.3f} bits/char "
        f"against {values[worst]:.3f}"
    )


def comparison_json(text: str, names: tuple[str, str], a: CharBits, b: CharBits) -> dict[str, Any]:
    better = None
    if a.totals.tokens and b.totals.tokens and not math.isclose(a.totals.bpc, b.totals.bpc):
        better = names[0] if a.totals.bpc < b.totals.bpc else names[1]
    return {
        "models": [
            {"model": name, **bits.totals.to_json()}
            for name, bits in zip(names, (a, b), strict=True)
        ],
        "better": better,
        "chars": len(text),
        "disagreements": [d.to_json() for d in disagreements(text, a, b)],
    }
