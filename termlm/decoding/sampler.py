"""One token drawn from one row of scores, in buffers kept from token to token.

``Sampler(temperature=..., top_p=...)(scores, rng)`` gives the same token as
``draw(warp(scores, temperature=..., top_p=...), rng)`` for the same generator state: the same
floating-point operations on the same values in the same order, so the same probabilities to the
last bit, and the same single ``rng.random()``. It only skips what costs time on a row of a few
dozen to a few thousand scores: new arrays at every token, the checks and wrappers of the general
functions, and a second pass to set the dropped tokens. Other filters (top-k, min-p, typical),
several rows, or a row without a finite maximum go through ``warp`` and ``draw`` themselves.
"""

from __future__ import annotations

import math

import numpy as np

from termlm.decoding.sampling import draw, warp

# When the likeliest token's probability p0 is over 1/2 and at least ``top_p``, both with a
# margin of ``_SURE``, the nucleus is that token alone, and the general path keeps only it and
# draws it with certainty (after one ``rng.random()``): no other token ties with it, and every
# other token's "mass ranked above" (a running sum of the sorted probabilities, less its own
# term) is p0 or more, less at most two roundings of numbers under 2 (< 5e-16). The margin also
# covers p0 computed here as a scalar (within a rounding of the general path's array value).
_SURE = 2e-15


class Sampler:
    """Temperature, top-k, top-p, min-p and typical sampling of one row ``[V]`` at a time."""

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        typical_p: float = 1.0,
    ) -> None:
        if temperature <= 0:
            raise ValueError("temperature must be > 0 (for temperature 0 use the greedy strategy)")
        self.temperature = temperature
        self.top_p = top_p
        self.top_k, self.min_p, self.typical_p = top_k, min_p, typical_p
        self._fast = top_k <= 0 and min_p <= 0.0 and typical_p >= 1.0
        self._size = -1
        self.best: int | None = None  # after a call on float32 scores: their argmax, else None

    def _general(self, scores: np.ndarray, rng: np.random.Generator) -> int:
        probs = warp(
            scores,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            typical_p=self.typical_p,
        )
        return draw(probs, rng)

    def _buffers(self, size: int) -> None:
        self._size = size
        self._exps = np.empty(size, dtype=np.float64)
        self._probs = np.empty(size, dtype=np.float64)  # softmax, then the filtered softmax
        self._work = np.empty(size, dtype=np.float64)
        self._keep_sorted = np.empty(size, dtype=bool)
        self._keep = np.empty(size, dtype=bool)

    def __call__(self, scores: np.ndarray, rng: np.random.Generator) -> int:
        """The drawn token id; ``scores``: one row ``[V]``."""
        self.best = None
        if (
            not self._fast
            or scores.ndim != 1
            or scores.dtype not in (np.float32, np.float64)
            or not scores.shape[0]
        ):
            return self._general(scores, rng)
        size = scores.shape[0]
        if size != self._size:
            self._buffers(size)
        x = np.divide(scores, self.temperature, dtype=np.float64)  # as float64, then divided
        best = int(x.argmax())  # the first maximum (argmax finds a NaN first: not finite)
        peak = x.item(best)
        if not math.isfinite(peak):  # NaN or infinite scores: the general path says what to do
            return self._general(scores, rng)
        if scores.dtype == np.float32:  # distinct float32 scores stay distinct once divided
            self.best = best
        np.subtract(x, peak, out=x)  # shifted (0 at ``best``)
        exps = np.exp(x, out=self._exps)
        log_sum = np.log(np.add.reduce(exps))
        if self.top_p < 1.0:
            top = np.exp(-log_sum)  # the softmax at ``best``: exp(0 - log_sum)
            if top - _SURE > 0.5 and top - _SURE >= self.top_p:  # it alone reaches top_p
                rng.random()  # the general path's draw, whose outcome is certain here
                return best
        probs = np.subtract(x, log_sum, out=self._probs)
        np.exp(probs, out=probs)  # the softmax (as log-softmax then exp)
        if self.top_p < 1.0:  # nucleus: the smallest set of likeliest tokens reaching top_p
            work = self._work
            order = np.argsort(np.negative(probs, out=work), kind="stable")
            sorted_p = probs[order]
            before = sorted_p.cumsum()
            np.subtract(before, sorted_p, out=before)  # mass of the tokens ranked above
            keep_sorted = np.less(before, self.top_p, out=self._keep_sorted)
            keep_sorted[0] = True
            keep = self._keep
            keep[order] = keep_sorted  # order is a permutation: every entry is set
            if not keep.item(best):  # probabilities tied by rounding: see ``_nucleus_probs``
                return self._general(scores, rng)
            total = np.add.reduce(np.multiply(exps, keep, out=work))  # kept exps, 0 elsewhere
            np.subtract(x, np.log(total), out=probs)
            np.exp(probs, out=probs)
            np.multiply(probs, keep, out=probs)  # the dropped tokens: 0, as exp(-inf)
        cdf = probs.cumsum()
        total = cdf.item(-1)
        if not math.isfinite(total) or total <= 0:
            return int(np.argmax(probs))
        index = int(cdf.searchsorted(rng.random() * total, side="right"))
        index = min(index, size - 1)
        while index > 0 and probs.item(index) <= 0:  # rounding at the very end of the cdf
            index -= 1
        return index
