"""Typed plugin options: what a plugin accepts, and how a user's value is checked and coerced."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from termlm.errors import PluginError

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


@dataclass(frozen=True)
class OptionSpec:
    """One option of a strategy or processor: its type, default and allowed range.

    ``min``/``max`` are inclusive unless ``min_inclusive``/``max_inclusive`` say otherwise;
    ``None`` leaves that side open. ``choices`` restricts the value to a set.
    """

    name: str
    type: type  # int | float | bool | str
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    min_inclusive: bool = True
    max_inclusive: bool = True

    def describe_range(self) -> str:
        """The allowed values in words: "(0, 10]", ">= 0", "one of: a, b"; "" if unrestricted."""
        if self.choices is not None:
            return "one of: " + ", ".join(str(c) for c in self.choices)
        if self.min is not None and self.max is not None:
            left = "[" if self.min_inclusive else "("
            right = "]" if self.max_inclusive else ")"
            return f"{left}{_num(self.min)}, {_num(self.max)}{right}"
        if self.min is not None:
            return f"{'>=' if self.min_inclusive else '>'} {_num(self.min)}"
        if self.max is not None:
            return f"{'<=' if self.max_inclusive else '<'} {_num(self.max)}"
        return ""

    def check(self, value: Any) -> Any:
        """The value coerced to this option's type, or ``PluginError`` naming the allowed range."""
        coerced = _coerce(self, value)
        if self.choices is not None and coerced not in self.choices:
            raise PluginError(
                f"{self.name} must be {self.describe_range()}, got {value!r}",
                f"pick one of the listed values for {self.name}",
            )
        if self.type in (int, float) and not _in_range(self, float(coerced)):
            raise PluginError(
                f"{self.name} must be in {self.describe_range()}, got {_num(coerced)}"
                if self.min is not None and self.max is not None
                else f"{self.name} must be {self.describe_range()}, got {_num(coerced)}",
                f"the default is {self.default!r}",
            )
        return coerced


def format_value(value: Any) -> str:
    """A value as a user types it: 0.7, 40, true, text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return _num(value)
    return str(value)


def _num(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _in_range(spec: OptionSpec, value: float) -> bool:
    if math.isnan(value):
        return False
    if spec.min is not None and (
        value < spec.min or (value == spec.min and not spec.min_inclusive)
    ):
        return False
    return not (
        spec.max is not None
        and (value > spec.max or (value == spec.max and not spec.max_inclusive))
    )


def _coerce(spec: OptionSpec, value: Any) -> Any:
    kind = spec.type
    wrong = PluginError(
        f"{spec.name} must be {_type_name(kind)}, got {value!r}",
        f"for example {spec.name}={spec.default!r}",
    )
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise wrong
    if kind is int:
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                try:
                    number = float(value.strip())
                except ValueError:
                    raise wrong from None
                if number.is_integer():
                    return int(number)
        raise wrong
    if kind is float:
        if isinstance(value, bool):
            raise wrong
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise wrong from None
        if not math.isfinite(number):
            raise PluginError(
                f"{spec.name} must be a finite number, got {value!r}",
                f"for example {spec.name}={spec.default!r}",
            )
        return number
    if kind is str:
        if isinstance(value, str):
            return value
        raise wrong
    raise PluginError(f"option {spec.name} has an unsupported type {kind!r}")


def _type_name(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(
        kind, kind.__name__
    )


def merge_specs(groups: Iterable[Iterable[OptionSpec]]) -> list[OptionSpec]:
    """Options of several plugins, first declaration of each name wins (order kept)."""
    seen: dict[str, OptionSpec] = {}
    for group in groups:
        for spec in group:
            seen.setdefault(spec.name, spec)
    return list(seen.values())


def check_values(specs: list[OptionSpec], values: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Every option's value (defaults filled in), coerced and range-checked."""
    by_name = {spec.name: spec for spec in specs}
    for key in values:
        if key not in by_name:
            valid = ", ".join(sorted(by_name)) or "(none)"
            raise PluginError(
                f"unknown option {key!r} for {owner}",
                f"valid options: {valid}",
            )
    return {
        spec.name: spec.check(values[spec.name]) if spec.name in values else spec.default
        for spec in specs
    }
