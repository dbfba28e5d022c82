"""One token drawn from one row of scores, in buffers kept from token to token.

``Sampler(temperature=..., top_p=...)(scores, rng)`` gives the same token as
``draw(warp(scores, temperature=..., top_p=...), rng)`` for the same generator state: the same
floating-point operations on the same values in the same order, so the same probabilities to the
last bit, and the same single ``rng.random()``. It only skips what costs time on a row of a few
dozen to a few thousand scores: new arrays at every token, the checks and wrappers of the general
functions, and a second pass to set the dropped tokens. Other filters (top-k, min-p, typical),
several rows, or a row without a finite maximum go through ``warp`` and ``draw`` themselves.

A row of at most ``SMALL_VOCAB`` scores (a character model's) is first decided quickly: numpy's
exponentials as the exact path computes them (the same bits), then the nucleus and the draw on
Python floats, with running sums in place of numpy's pairwise sums and the normalised
probabilities, so the sums compared may differ from the exact path's in their last bits (by far
less than ``_SLACK`` in relative terms). The token is taken from that only when every decision it
rests on (which tokens the nucleus keeps, where the uniform draw falls in the cumulative sum)
clears its threshold by more than ``_SLACK``: the exact path then decides the same way.
Otherwise the exact path decides, with the same uniform number (``rechecked`` counts those
rows). Either way the token is the one ``draw(warp(...))`` gives; a numpy call costs more than
its arithmetic on such a short row, and this way makes under half as many.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from termlm.decoding.contracts import token_logprob
from termlm.decoding.sampling import draw, warp

# When the likeliest token's probability p0 is over 1/2 and at least ``top_p``, both with a
# margin of ``_SURE``, the nucleus is that token alone, and the general path keeps only it and
# draws it with certainty (after one ``rng.random()``): no other token ties with it, and every
# other token's "mass ranked above" (a running sum of the sorted probabilities, less its own
# term) is p0 or more, less at most two roundings of numbers under 2 (< 5e-16). The margin also
# covers p0 computed here as a scalar (within a rounding of the general path's array value).
_SURE = 2e-15
SMALL_VOCAB = 160  # rows up to this size are first decided quickly (see the doc)
# How close to a threshold a quick decision may come, relative to the sum of the exponentials:
# the sums compared differ from the exact path's by at most some hundreds of roundings (2.2e-16
# each: at most SMALL_VOCAB terms summed in another order, and the exact path's normalised
# probabilities, exp(x - log(sum)), each within a few roundings of exp(x) / sum).
_SLACK = 1e-11


class _Drawn:
    """A generator stand-in that gives back one uniform number already drawn."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


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
        self.rechecked = 0  # rows whose quick decision was too close to call: decided exactly
        self._pair_size = -1
        self._divisors = np.array([[temperature], [1.0]], dtype=np.float64)
        self._peaks = np.empty((2, 1), dtype=np.float64)
        self._row: np.ndarray | None = None  # the row of the latest call, for ``logprob``
        self._peak: float | None = None  # its maximum when the quick path left its numbers

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
        self._row, self._peak = scores, None
        if (
            self._fast
            and scores.ndim == 1
            and 0 < scores.shape[0] <= SMALL_VOCAB
            and scores.dtype in (np.float32, np.float64)
        ):
            token = self._quick(scores, rng)
            if token is not None:
                return token
        return self._exact(scores, rng)

    def _quick(self, scores: np.ndarray, rng: np.random.Generator) -> int | None:
        """The token, decided from numpy's exponentials and Python sums; None (nothing drawn)
        for a row with a NaN or an infinite maximum: the exact path says what to do then.

        Row 0 of the buffer holds the scores over the temperature, row 1 the scores themselves:
        the same calls make the chosen token's log-probability at temperature 1 (``logprob``)."""
        size = scores.shape[0]
        if size != self._pair_size:
            self._pair = np.empty((2, size), dtype=np.float64)
            self._pair_size = size
        pair, peaks = self._pair, self._peaks
        best = int(scores.argmax())  # the first maximum (argmax finds a NaN first)
        np.divide(scores, self._divisors, out=pair, dtype=np.float64)  # [s / t, s / 1]
        peak = pair.item(0, best)  # the exact path's maximum of s / t
        if not math.isfinite(peak):
            return None
        self.best = best if scores.dtype == np.float32 else None
        peaks[0, 0] = peak
        peaks[1, 0] = pair.item(1, best)
        np.subtract(pair, peaks, out=pair)
        np.exp(pair, out=pair)  # the exponentials of the exact path and of ``token_logprob``
        self._peak = peaks.item(1, 0)  # ``logprob`` reads row 1 while it is this row's
        exps = pair[0].tolist()
        total = sum(exps)
        slack = _SLACK * total
        top_p = self.top_p
        ids: list[int] | None = None
        if top_p < 1.0:
            top = 1.0 / total  # the likeliest token's probability (its exp is 1)
            sure = _SURE + _SLACK
            if top - sure > 0.5 and top - sure >= top_p:  # as the exact path's shortcut
                rng.random()
                return best
            ranked = sorted(exps, reverse=True)
            if size > 1 and ranked[0] - ranked[1] <= ranked[0] * _SLACK:
                return self._recheck(scores, rng.random())  # near-tied maxima: sorted how?
            limit = top_p * total  # kept: the tokens whose mass ranked above is under top_p
            before = 0.0  # the mass ranked above the next token
            kept = 0
            for e in ranked:
                if before >= limit:
                    break
                before += e
                kept += 1
            u = rng.random()
            last = ranked[kept - 1]
            close = before - last >= limit - slack  # the last token kept: only just in?
            if kept < size:  # the first one left out: only just out, or tied with it?
                close = close or before - limit <= slack or last - ranked[kept] <= last * _SLACK
            if close:
                return self._recheck(scores, u)
            if kept < size:
                ids = [i for i, e in enumerate(exps) if e >= last]  # in their order in the row
                exps = [exps[i] for i in ids]
        else:
            u = rng.random()
        running = 0.0
        cdf = []
        for e in exps:
            running += e
            cdf.append(running)
        target = u * running
        j = bisect_right(cdf, target)
        if j >= len(cdf) or cdf[j] - target <= slack or (j > 0 and target - cdf[j - 1] <= slack):
            return self._recheck(scores, u)
        return j if ids is None else ids[j]

    def logprob(self, scores: np.ndarray, token: int) -> float:
        """``token_logprob(scores, token)`` (temperature 1): from the exponentials the latest call
        left when it was on this row and took the quick path; else computed afresh."""
        if scores is not self._row:
            return token_logprob(scores, token)
        if self._peak is None:
            return token_logprob(scores, token, best=self.best)
        total = np.add.reduce(self._pair[1])
        return float((scores.item(token) - self._peak) - np.log(total))

    def _recheck(self, scores: np.ndarray, u: float) -> int:
        self.rechecked += 1
        return self._exact(scores, _Drawn(u))  # type: ignore[arg-type]

    def _exact(self, scores: np.ndarray, rng: np.random.Generator) -> int:
        """The token from numpy's numbers: the same operations as ``draw(warp(...))``."""
        self.best = None
        self._peak = None
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
