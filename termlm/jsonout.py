"""JSON that every parser reads: no ``NaN``, ``Infinity`` or ``-Infinity``.

Python's ``json`` writes non-finite floats as those words, which are not JSON. termlm's JSON
outputs write them as ``null`` instead (docs/json.md): a log-probability of a banned token, a
perplexity that overflowed, a plugin option's unbounded range.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """The value with every non-finite float (also inside lists, tuples and dicts) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # a numpy scalar or array
        return finite(value.tolist())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` of the value, refusing NaN and infinities outright."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
