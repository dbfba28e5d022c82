"""One token drawn from one row of scores, in buffers kept from token to token.

``Sampler(temperature=..., top_p=...)(scores, rng)`` gives the same token as
``draw(warp(scores, temperature=..., top_p=...), rng)`` for the same generator state, with the
same single ``rng.random()``. Other filters (top-k, min-p, typical), several rows, or a row
without a finite maximum go through ``warp`` and ``draw`` themselves.

The exact path (``_exact``) makes the same floating-point operations on the same values in the
same order as ``draw(warp(...))``, so the same probabilities to the last bit; it only skips what
costs time on a row of a few dozen to a few thousand scores: new arrays at every token, the
checks and wrappers of the general functions, and a second pass to set the dropped tokens.

A row of at most ``SMALL_VOCAB`` scores (a character model's) is first decided quickly, in plain
Python: one numpy call (``tolist``), then ``math.exp(s / t)`` and ``math.exp(s)`` for every
score (no shift by the maximum: a row that overflows, underflows or holds a NaN goes to the exact
path), and the nucleus and the draw decided with Python's sorting, running sums and ``bisect``.
These numbers differ from the exact path's (numpy's exponentials of the scores shifted by their
maximum, normalised, summed pairwise) by far less than ``_SLACK`` of the total (see there). The
token is taken from them only when every decision it rests on (which tokens the nucleus keeps,
where the uniform draw falls in the cumulative sum) clears its threshold by more than
``_SLACK``: the exact path then decides the same way. Otherwise the exact path decides, with
the same uniform number (``rechecked`` counts those rows). Either way the token is the one
``draw(warp(...))`` gives. Right after a model step a numpy call costs 1 to 5 µs (the step has
pushed numpy's code and data out of the caches), more than its arithmetic on such a short row:
the interpreter's own float arithmetic on a hundred-odd numbers costs less there, though not in
a tight loop.

``from_logits`` takes the model's logits and the ids the processors would ban (when banning
them is all the processors do, ``DecodeContext.logit_bans``): the quick path then needs no
processed copy of the row, and asks for one only when it hands the row to the exact path.
``Uniforms`` hands out a generator's numbers drawn ahead in blocks, the same numbers in the same
order, for a caller that is the generator's only reader.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from math import exp as _exp

import numpy as np

from termlm.decoding.contracts import token_logprob
from termlm.decoding.sampling import UniformSource, draw, warp

# When the likeliest token's probability p0 is over 1/2 and at least ``top_p``, both with a
# margin of ``_SURE``, the nucleus is that token alone, and the general path keeps only it and
# draws it with certainty (after one ``rng.random()``): no other token ties with it, and every
# other token's "mass ranked above" (a running sum of the sorted probabilities, less its own
# term) is p0 or more, less at most two roundings of numbers under 2 (< 5e-16). The margin also
# covers p0 computed in another way than the general path's (well within a rounding of it).
_SURE = 2e-15
SMALL_VOCAB = 100  # rows up to this size are first decided quickly (see the doc); in plain Python
# a longer row costs more than the exact path (at 128 scores, half as much again, in a tight loop)
# How close to a threshold a quick decision may come, relative to the sum of the exponentials.
# The quick numbers differ from the exact path's by far less: each exponential there is
# exp(x - peak) with x - peak rounded once, so relative to the total a term moves by at most
# d * exp(-d) * 2**-53 < 5e-17 (d: how far below the peak), plus a few roundings of the exp
# (numpy's there, the C library's here), the normalisation and the sums of at most
# SMALL_VOCAB terms (each 2**-53 of the total): under 1e-12 in all.
_SLACK = 1e-11
# The quick path's sums: within these bounds no term that matters lost precision to underflow
# (a subnormal exponential is off by at most 5e-324, nothing beside 1e-280); an overflow raises.
_LOWEST, _HIGHEST = 1e-280, 1e300
_EXACT, _RECHECK = -1, -2  # what ``_quick`` says when it does not decide


class _Drawn:
    """A generator stand-in that gives back one uniform number already drawn."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


class Uniforms:
    """``rng.random()``, drawn ahead ``block`` numbers at a time: the same numbers in the same
    order (numpy's generators fill an array as they draw single numbers), for a caller that is
    the only reader of ``rng`` until it is done with it (the generator is then further on)."""

    def __init__(self, rng: np.random.Generator, block: int = 64) -> None:
        self._rng = rng
        self._block = block
        self._ahead: list[float] = []

    def random(self) -> float:
        if not self._ahead:
            self._ahead = rng_block = self._rng.random(self._block).tolist()
            rng_block.reverse()  # handed out from the end
        return self._ahead.pop()


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
        self.rechecked = 0  # rows whose quick decision was too close to call: decided exactly
        self._u = 0.0  # the uniform number a quick path drew before handing the row on
        # For ``logprob``, when the quick path took the latest row: its scores as Python floats
        # and the ids banned (else None), then its exp(s) at temperature 1 (made when first
        # asked, unless the temperature is 1) and their sum.
        self._latest: list[float] | None = None
        self._latest_bans: Sequence[int] = ()
        self._ones: list[float] | None = None
        self._ones_total = -1.0
        self._scores: np.ndarray | None = None  # the latest row's processed scores, once had

    def _general(self, scores: np.ndarray, rng: UniformSource) -> int:
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

    def _quick_fits(self, row: np.ndarray) -> bool:
        return (
            self._fast
            and row.ndim == 1
            and 0 < row.shape[0] <= SMALL_VOCAB
            and row.dtype in (np.float32, np.float64)
        )

    def __call__(self, scores: np.ndarray, rng: UniformSource) -> int:
        """The drawn token id; ``scores``: one row ``[V]``."""
        self._scores = scores
        if self._quick_fits(scores):
            token = self._quick(scores, (), rng)
            if token >= 0:
                return token
            if token == _RECHECK:
                return self._recheck(scores)
        self._latest = None
        return self._exact(scores, rng)

    def from_logits(
        self,
        logits: np.ndarray,
        banned: Sequence[int],
        rng: UniformSource,
        scores: Callable[[], np.ndarray],
    ) -> int:
        """``self(scores(), rng)``, where ``scores()`` is ``logits`` [V] with the ``banned`` ids
        (valid ids of the row) and any NaN set to -inf: decided from ``logits`` when it can,
        else from ``scores()`` (called only then)."""
        self._scores = None
        if self._quick_fits(logits):
            token = self._quick(logits, banned, rng)
            if token >= 0:
                return token
            if token == _RECHECK:
                self._scores = scores()
                return self._recheck(self._scores)
        self._latest = None
        self._scores = scores()
        return self._exact(self._scores, rng)

    def _quick(self, row: np.ndarray, banned: Sequence[int], rng: UniformSource) -> int:
        """The token, decided on Python floats (see the module doc); else ``_RECHECK`` (a
        decision too close to call: the uniform number drawn is in ``_u``) or ``_EXACT`` (a row
        these sums cannot take, nothing drawn). ``banned``: ids whose score counts as -inf."""
        size = row.shape[0]
        scores = row.tolist()  # float32 or float64 values, exactly
        t = self.temperature
        try:  # s / t as the exact path's float64 division; math.exp within a rounding of numpy's
            exps = [_exp(s / t) for s in scores]
        except OverflowError:  # a row that needs the shift by its maximum
            self._latest = None
            return _EXACT
        for i in banned:
            exps[i] = 0.0
        total = sum(exps)
        if not _LOWEST < total < _HIGHEST:  # NaN, an overflow, or all but nothing
            self._latest = None
            return _EXACT
        self._latest, self._latest_bans = scores, banned
        self._ones, self._ones_total = (exps if t == 1.0 else None), -1.0
        slack = _SLACK * total
        top_p = self.top_p
        if top_p < 1.0:
            ranked = sorted(exps, reverse=True)
            peak = ranked[0]
            top = peak / total  # the likeliest token's probability
            sure = _SURE + _SLACK
            if top - sure > 0.5 and top - sure >= top_p:  # as the exact path's shortcut
                rng.random()
                return exps.index(peak)  # the only maximum: another would make top <= 1/2
            if size > 1 and peak - ranked[1] <= peak * _SLACK:
                self._u = rng.random()
                return _RECHECK  # near-tied maxima: which one sorts first?
            # kept: the tokens whose mass ranked above is under top_p; ``above[k]`` is the mass
            # of the first k + 1 ranked tokens, so the first k kept are those before the first
            # ``above`` at or over the limit, and that one too
            limit = top_p * total
            above = list(accumulate(ranked))
            kept = min(bisect_left(above, limit) + 1, size)
            u = rng.random()
            last = ranked[kept - 1]
            before_last = above[kept - 2] if kept > 1 else 0.0
            close = before_last >= limit - slack  # the last token kept: only just in?
            if kept < size:  # the first one left out: only just out, or tied with the last?
                close = (
                    close
                    or above[kept - 1] - limit <= slack
                    or last - ranked[kept] <= last * _SLACK
                )
            if close:
                self._u = u
                return _RECHECK
            if kept < size:  # the nucleus in row order, the others at 0
                exps = [e if e >= last else 0.0 for e in exps]
        else:
            u = rng.random()
        cdf = list(accumulate(exps))
        target = u * cdf[-1]
        j = bisect_right(cdf, target)
        if j >= size or cdf[j] - target <= slack or (j > 0 and target - cdf[j - 1] <= slack):
            self._u = u
            return _RECHECK
        return j

    def logprob(self, token: int, scores: Callable[[], np.ndarray]) -> float:
        """``token_logprob(scores(), token)`` (temperature 1, to within a few roundings) for a
        token of the latest row: from exponentials of the row in plain Python when the quick path
        took it (made at the first call, not by the draw: a caller that never asks, one that
        wants alternatives, pays nothing), else from the processed scores the latest call had;
        ``scores()`` (the latest row's processed scores) is called only when neither is at
        hand."""
        if self._latest is not None and self._ones is None:
            try:
                made = list(map(_exp, self._latest))
            except OverflowError:
                self._latest = None
            else:
                for i in self._latest_bans:
                    made[i] = 0.0
                self._ones = made
        ones = self._ones if self._latest is not None else None
        if ones is not None:
            mine = ones[token]
            total = self._ones_total
            if total < 0:
                total = self._ones_total = sum(ones)
            if mine > _LOWEST and total < _HIGHEST:
                ratio = total / mine  # >= 1: the chosen token is part of the total
                if ratio < math.inf:
                    return -math.log(ratio)
        return token_logprob(scores() if self._scores is None else self._scores, token)

    def _recheck(self, scores: np.ndarray) -> int:
        self.rechecked += 1
        return self._exact(scores, _Drawn(self._u))

    def _exact(self, scores: np.ndarray, rng: UniformSource) -> int:
        """The token from numpy's numbers: the same operations as ``draw(warp(...))``."""
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
