"""What `termlm score` prints: the text coloured by surprisal, token lines, JSON, a comparison.

Printing only; the numbers come from termlm.decoding.textscore.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import IO, Any

from termlm.cli.score_compare import CharCosts, compare
from termlm.cli.textspans import TokenSpans
from termlm.decoding.textscore import ScoreTotals, TokenScore
from termlm.jsonout import dumps as json_dumps

HIGH_NATS = 6.0  # surprisal from which a token is shown fully red
_SCALE = ("#4caf50", "#9bc53d", "#d8b43c", "#e0803a", "#d64545")  # expected ... surprising


def surprise_style(nats: float) -> str:
    """Green when expected, red from HIGH_NATS up (the chat's score view uses the same scale)."""
    x = min(max(nats, 0.0), HIGH_NATS) / HIGH_NATS
    return "bold " + _SCALE[min(int(x * len(_SCALE)), len(_SCALE) - 1)]


def safe(text: str) -> str:
    """Text for a terminal: control characters (escape sequences, bells) shown escaped."""
    from termlm.textsafe import safe_text

    return safe_text(text)


def visible(piece: str) -> str:
    """A token on one line: spaces, tabs and line breaks made visible, controls escaped."""
    from termlm.textsafe import safe_line

    return safe_line(piece.replace("\n", "⏎").replace("\t", "⇥").replace(" ", "␣")) or "∅"


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
        piece = Text(safe(text[at:start]))
        piece.append(safe(text[start:end]), style=surprise_style(score.surprisal))
        console.print(piece, end="")
        out.flush()
        at = end
    console.print(Text(safe(text[at:])), end="")
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
        out.write(json_dumps(record, ensure_ascii=False) + "\n")
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


def stream_comparison(
    text: str,
    names: tuple[str, str],
    first: CharCosts,
    second: CharCosts,
    out: IO[str],
    colour: bool,
) -> None:
    """On a terminal, the text coloured where the models disagree, as both read it; then, on any
    output, each model's totals, which knows the text better, and the words they disagree on."""
    from rich.console import Console
    from rich.text import Text

    console = Console(
        file=out, force_terminal=colour, no_color=not colour, highlight=False, soft_wrap=True
    )

    def show(start: int, end: int, costs: list[tuple[float, float]]) -> None:
        piece = Text()
        for offset, (a, b) in enumerate(costs):
            piece.append(safe(text[start + offset]), style=diff_style(a, b))
        console.print(piece, end="")
        out.flush()

    result = compare(text, names, first, second, show if colour else None)
    if colour:
        console.print("" if text.endswith("\n") else "\n", end="")
        console.print(
            Text.assemble(
                ("blue", "bold #4292c6"),
                f": {names[0]} knows better, ",
                ("orange", "bold #f16913"),
                f": {names[1]} knows better",
            )
        )
    for name, totals in zip(names, result.totals, strict=True):
        console.print(Text(summary_line(name, totals)))
    better = result.better
    if better is not None:
        index = names.index(better)
        console.print(
            Text(
                f"{better} knows this text better: {result.totals[index].bpc:.3f} bits/char "
                f"against {result.totals[1 - index].bpc:.3f}"
            )
        )
    elif result.totals[0].tokens and result.totals[1].tokens:
        console.print("both models know this text equally well")
    if result.disagreements:
        console.print(Text(f"where they disagree most (bits: {names[0]} / {names[1]}):"))
        for d in result.disagreements:
            console.print(Text(f"  {d.bits[0]:7.2f} / {d.bits[1]:<7.2f} {visible(d.text)}"))
