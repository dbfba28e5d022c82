"""Text coloured token by token: confidence, entropy, surprisal, attention and hidden units.

Pure functions from numbers to Rich ``Text``; the widgets and screens only place the results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.text import Text

from termlm.tui.safetext import safe_text

COLOUR_MODES = ("off", "probability", "entropy")
BAR_WIDTH = 24

# From unsure to sure: red, orange, yellow, green.
_CONFIDENCE = ("#d64545", "#e0803a", "#d8b43c", "#9bc53d", "#4caf50")


def confidence_colour(prob: float) -> str:
    """A colour for a probability in [0, 1]: red when unsure, green when sure."""
    p = min(max(prob, 0.0), 1.0)
    return _CONFIDENCE[min(int(p * len(_CONFIDENCE)), len(_CONFIDENCE) - 1)]


def surprise_colour(nats: float, high: float = 6.0) -> str:
    """Surprisal or entropy in nats: green when low, red from ``high`` up."""
    return confidence_colour(1.0 - min(max(nats, 0.0), high) / high)


def piece_spans(pieces: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) character offsets of each piece in their concatenation."""
    spans, at = [], 0
    for piece in pieces:
        spans.append((at, at + len(piece)))
        at += len(piece)
    return spans


def coloured(
    body: str,
    pieces: Sequence[str],
    colours: Sequence[str | None],
    *,
    offset: int = 0,
    selected: int | None = None,
) -> Text:
    """``body`` (found at ``offset`` in the pieces' text) with each piece's colour as its style.

    ``selected``: a piece shown in reverse video (the token under the cursor).
    """
    text = Text(safe_text(body))  # one character for one: the offsets still hold
    end = offset + len(body)
    for index, ((a, b), colour) in enumerate(zip(piece_spans(pieces), colours, strict=True)):
        lo, hi = max(a, offset), min(b, end)
        if hi <= lo:
            continue
        style = f"bold {colour}" if colour else ""
        if index == selected:
            style = f"reverse {style}".strip()
        if style:
            text.stylize(style, lo - offset, hi - offset)
    return text


def bar(prob: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of eighths: ``prob`` of ``width`` cells."""
    eighths = round(min(max(prob, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)


def show_token(text: str) -> str:
    """A token as it can be read on one line: spaces and line breaks made visible."""
    return safe_text(text.replace("\n", "⏎").replace("\t", "⇥").replace(" ", "␣")) or "∅"


def heat(weights: np.ndarray, labels: Sequence[str]) -> Text:
    """Labels on a background whose strength is the weight (scaled to the largest)."""
    out = Text()
    top = float(weights.max()) if weights.size else 0.0
    for weight, label in zip(weights.tolist(), labels, strict=True):
        level = 0.0 if top <= 0 else weight / top
        shade = int(40 + 215 * level)
        colour = f"#{shade:02x}{int(shade * 0.55):02x}00" if level > 0.02 else "#303030"
        ink = "black" if level > 0.5 else "white"
        out.append(show_token(label), style=f"{ink} on {colour}")
    return out


def activation_colour(value: float, scale: float) -> str:
    """Blue for negative, red for positive, brighter as |value| nears ``scale``."""
    level = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0)
    shade = int(30 + 200 * level)
    return f"#{shade:02x}2020" if value > 0 else f"#2020{shade:02x}"


def top_units(hidden: np.ndarray, k: int) -> list[int]:
    """The k units that vary most over the text: hidden [N, H] -> unit indices."""
    if hidden.shape[0] == 0:
        return []
    spread = hidden.astype(np.float32).std(axis=0) + 1e-3 * np.abs(hidden).mean(axis=0)
    return [int(i) for i in np.argsort(-spread)[:k]]


def unit_strip(values: np.ndarray, pieces: Sequence[str], selected: int | None = None) -> Text:
    """One hidden unit over the text: every piece on its activation's colour. values: [N]."""
    scale = float(np.abs(values).max()) if values.size else 1.0
    out = Text()
    for index, (value, piece) in enumerate(zip(values.tolist(), pieces, strict=True)):
        style = f"white on {activation_colour(value, scale)}"
        if index == selected:
            style = "bold underline " + style
        out.append(safe_text(piece.replace("\n", "⏎").replace("\t", " ")) or "∅", style=style)
    return out


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan
