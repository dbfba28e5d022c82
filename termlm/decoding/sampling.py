"""Pure functions that turn scores into a sampling distribution, and draw from it.

All take and return float arrays over the vocabulary ([V] or [B, V], last axis). Filters set the
dropped tokens to -inf and always keep at least the most likely token.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from termlm.decoding.contracts import log_softmax

NEG_INF = -np.inf


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``logits / temperature`` as float64; ``ValueError`` for a temperature <= 0."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (for temperature 0 use the greedy strategy)")
    return np.asarray(logits, dtype=np.float64) / temperature


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the k highest scores (k <= 0: keep all). Ties at the k-th score are kept."""
    x = np.asarray(logits, dtype=np.float64)
    if k <= 0 or k >= x.shape[-1]:
        return x
    kth = -np.partition(-x, k - 1, axis=-1)[..., k - 1 : k]  # [..., 1] k-th largest
    return np.where(x >= kth, x, NEG_INF)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Nucleus: the smallest set of most likely tokens whose probability reaches p."""
    x = np.asarray(logits, dtype=np.float64)
    if p >= 1.0:
        return x
    probs = np.exp(log_softmax(x))
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_p = _take(probs, order)
    before = sorted_p.cumsum(axis=-1) - sorted_p  # mass of the tokens ranked above
    keep_sorted = before < p
    keep_sorted[..., 0] = True
    return np.where(_unsort(keep_sorted, order), x, NEG_INF)


def min_p_filter(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Drop tokens less likely than ``min_p`` times the most likely one."""
    x = np.asarray(logits, dtype=np.float64)
    if min_p <= 0.0:
        return x
    probs = np.exp(log_softmax(x))
    floor = min_p * np.max(probs, axis=-1, keepdims=True)
    return np.where(probs >= floor, x, NEG_INF)


def typical_filter(logits: np.ndarray, mass: float) -> np.ndarray:
    """Locally typical sampling: keep the tokens whose surprise is closest to the entropy,
    up to ``mass`` of probability."""
    x = np.asarray(logits, dtype=np.float64)
    if mass >= 1.0:
        return x
    logp = log_softmax(x)
    probs = np.exp(logp)
    with np.errstate(invalid="ignore"):
        entropy = -np.sum(np.where(probs > 0, probs * logp, 0.0), axis=-1, keepdims=True)
        distance = np.abs(-logp - entropy)
    distance = np.where(np.isfinite(distance), distance, np.inf)
    order = np.argsort(distance, axis=-1, kind="stable")
    sorted_p = _take(probs, order)
    before = sorted_p.cumsum(axis=-1) - sorted_p
    keep_sorted = before < mass
    keep_sorted[..., 0] = True
    return np.where(_unsort(keep_sorted, order), x, NEG_INF)


def _take(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values`` in ``order`` along the last axis (plain indexing for one row: faster)."""
    return values[order] if values.ndim == 1 else np.take_along_axis(values, order, axis=-1)


def _unsort(sorted_values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The inverse of ``_take``: ``out[..., order[..., i]] = sorted_values[..., i]``."""
    out = np.zeros_like(sorted_values)
    if out.ndim == 1:
        out[order] = sorted_values
    else:
        np.put_along_axis(out, order, sorted_values, axis=-1)
    return out


def warp(
    logits: np.ndarray,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    typical_p: float = 1.0,
) -> np.ndarray:
    """The sampling distribution: temperature, then top-k, top-p, min-p and typical filters.

    Returns probabilities (float64, same shape, rows sum to 1).
    """
    x = apply_temperature(logits, temperature)
    if x.ndim == 1 and top_k <= 0 and min_p <= 0.0 and typical_p >= 1.0 and top_p < 1.0:
        fast = _nucleus_probs(x, top_p)  # the default sampling: one row, top-p only
        if fast is not None:
            return fast
    x = top_k_filter(x, top_k)
    x = top_p_filter(x, top_p)
    x = min_p_filter(x, min_p)
    x = typical_filter(x, typical_p)
    return np.exp(log_softmax(x))


def _nucleus_probs(x: np.ndarray, p: float) -> np.ndarray | None:
    """``exp(log_softmax(top_p_filter(x, p)))`` for one row [V] float64, the same bits, in
    fewer steps: the filtered row's maximum and exponentials are the unfiltered row's.
    None when the row has no finite maximum, or when its maximum is not kept (scores so close
    that their probabilities round to ties): the general path handles those."""
    best = int(x.argmax())
    peak = x[best]
    if not math.isfinite(peak):
        return None
    shifted = x - peak
    exps = np.exp(shifted)
    probs = np.exp(shifted - np.log(exps.sum()))  # softmax, as log_softmax then exp
    order = np.argsort(-probs, kind="stable")
    sorted_p = probs[order]
    keep_sorted = (sorted_p.cumsum() - sorted_p) < p  # mass of the tokens ranked above
    keep_sorted[0] = True
    keep = np.zeros(x.shape[0], dtype=bool)
    keep[order] = keep_sorted
    if not keep[best]:
        return None
    total = np.where(keep, exps, 0.0).sum()
    return np.exp(np.where(keep, shifted, NEG_INF) - np.log(total))


class UniformSource(Protocol):
    """What ``draw`` needs of a random generator (a ``numpy.random.Generator`` is one)."""

    def random(self) -> float:
        """A number drawn uniformly from [0, 1)."""
        ...


def draw(probs: np.ndarray, rng: UniformSource) -> int:
    """One index drawn from a probability vector [V] (robust to rounding; never a zero-prob id)."""
    p = np.asarray(probs, dtype=np.float64)
    cdf = p.cumsum()
    total = float(cdf[-1])
    if not math.isfinite(total) or total <= 0:
        return int(np.argmax(p))
    index = int(cdf.searchsorted(rng.random() * total, side="right"))
    index = min(index, p.shape[0] - 1)
    while p[index] <= 0 and index > 0:  # rounding at the very end of the cdf
        index -= 1
    return index
