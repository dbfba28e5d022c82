"""Form text to option values and back: pure functions, checked against an option's spec."""

from __future__ import annotations

import math
from typing import Any

from termlm.tui.engine import OptionLike


def range_text(spec: OptionLike) -> str:
    """The allowed values, as shown next to a field: "[0, 10]", ">= 1", "one of a, b"."""
    if spec.choices is not None:
        return "one of " + ", ".join(map(str, spec.choices))
    if spec.type not in (int, float):
        return ""
    low = None if spec.min is None else _number(spec.min)
    high = None if spec.max is None else _number(spec.max)
    if low is not None and high is not None:
        return f"[{low}, {high}]"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return "any number"


def parse_option(spec: OptionLike, raw: str) -> Any:
    """Read a field's text as the option's type; ValueError says what is allowed."""
    text = raw.strip()
    if spec.type is int:
        try:
            value: Any = int(text)
        except ValueError:
            raise ValueError(f"{spec.name} must be a whole number {range_text(spec)}") from None
    elif spec.type is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{spec.name} must be a number {range_text(spec)}") from None
        if not math.isfinite(value):
            raise ValueError(f"{spec.name} must be a finite number {range_text(spec)}")
    elif spec.type is bool:
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"{spec.name} must be true or false")
        value = lowered == "true"
    else:
        value = text
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"{spec.name} must be {range_text(spec)}")
    if spec.type in (int, float) and (
        (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max)
    ):
        raise ValueError(f"{spec.name} must be in {range_text(spec)}, got {_number(value)}")
    return value


def format_option(value: Any) -> str:
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
