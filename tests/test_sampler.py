"""The kept-buffer sampler draws exactly what ``draw(warp(...))`` draws, for the same generator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.decoding.sampler import Sampler
from termlm.decoding.sampling import draw, warp


def same_draws(scores: np.ndarray, seed: int, times: int = 4, **options: float) -> None:
    sampler = Sampler(**options)  # type: ignore[arg-type]
    reference, fast = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(times):
        assert sampler(scores, fast) == draw(warp(scores, **options), reference)
    assert fast.random() == reference.random()  # as many numbers drawn


scores_rows = st.lists(
    st.one_of(
        st.floats(-30, 30, width=32),
        st.just(-math.inf),
        st.sampled_from([0.0, 1.0, 2.5]),  # ties
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(
    row=scores_rows,
    temperature=st.sampled_from([0.2, 0.8, 1.0, 1.7]),
    top_p=st.sampled_from([0.1, 0.5, 0.9, 0.95, 0.999999, 1.0]),
    seed=st.integers(0, 2**31),
)
def test_same_tokens_as_warp_then_draw(
    row: list[float], temperature: float, top_p: float, seed: int
) -> None:
    same_draws(np.asarray(row, dtype=np.float32), seed, temperature=temperature, top_p=top_p)


@pytest.mark.parametrize("gap", [-1e-9, -1e-14, 0.0, 1e-14, 1e-9])
def test_a_likeliest_token_just_at_top_p(gap: float) -> None:
    # two tokens: the likeliest has probability p0 = 1 / (1 + exp(-d)); top_p set next to it
    for d in (1.0, 2.9444389791664403, 3.0, 5.0):
        scores = np.array([0.0, d], dtype=np.float64)
        p0 = float(warp(scores, temperature=1.0).max())
        for seed in range(3):
            same_draws(scores, seed, temperature=1.0, top_p=min(1.0, max(1e-6, p0 + gap)))


def test_other_filters_and_odd_rows_take_the_general_path() -> None:
    rng_row = np.random.default_rng(0).normal(size=50).astype(np.float32)
    for options in (
        {"temperature": 0.8, "top_k": 5},
        {"temperature": 1.3, "min_p": 0.05, "top_p": 0.9},
        {"temperature": 1.0, "typical_p": 0.7},
    ):
        same_draws(rng_row, 3, **options)
    same_draws(np.array([np.nan, 1.0, 2.0], dtype=np.float32), 1, temperature=0.8, top_p=0.9)
    same_draws(np.full(4, -np.inf, dtype=np.float32), 1, temperature=0.8, top_p=0.9)
    same_draws(np.array([np.inf, 1.0], dtype=np.float32), 1, temperature=0.8, top_p=0.9)


def test_a_temperature_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="greedy"):
        Sampler(temperature=0.0)


@settings(max_examples=200, deadline=None)
@given(row=scores_rows, temperature=st.sampled_from([0.01, 0.8, 1.0, 10.0]))
def test_the_argmax_it_keeps_is_the_scores_own(row: list[float], temperature: float) -> None:
    scores = np.asarray(row, dtype=np.float32)
    sampler = Sampler(temperature=temperature, top_p=0.9)
    sampler(scores, np.random.default_rng(0))
    if sampler.best is not None:
        assert sampler.best == int(scores.argmax())


def test_scores_whose_probabilities_round_to_ties_take_the_general_path() -> None:
    from termlm.decoding.sampling import log_softmax, top_p_filter

    # the maximum (index 8) ties in probability with the others, and sorts after them: the
    # nucleus leaves it out, so the filtered row's maximum is not the row's
    row = np.full(57, -2.220446049250313e-16)
    row[8] = 0.0
    reference = np.exp(log_softmax(top_p_filter(row, 0.1)))
    np.testing.assert_array_equal(warp(row, temperature=1.0, top_p=0.1), reference)
    same_draws(row, 5, temperature=1.0, top_p=0.1)


class Drawn:
    """A generator stand-in giving the uniform numbers it is handed, in order."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def boundaries(scores: np.ndarray, **options: float) -> list[float]:
    """The uniform numbers at which the reference draw moves from one token to the next."""
    probs = warp(scores, **options)
    cdf = probs.cumsum()
    return [float(c / cdf[-1]) for c in cdf[:-1] if 0 < c < cdf[-1]]


@settings(max_examples=200, deadline=None)
@given(
    row=st.lists(st.floats(-8, 8, width=32), min_size=2, max_size=120),
    top_p=st.sampled_from([0.5, 0.9, 0.95, 1.0]),
    nudge=st.sampled_from([-1, 0, 1]),
)
def test_a_draw_on_a_boundary_is_decided_by_the_exact_numbers(
    row: list[float], top_p: float, nudge: int
) -> None:
    """Uniform numbers on (or one rounding from) the edges between tokens: the quick path
    cannot tell which side they fall, so it hands them to the exact one."""
    scores = np.asarray(row, dtype=np.float32)
    options = {"temperature": 0.8, "top_p": top_p}
    for u in boundaries(scores, **options)[:6]:
        u = float(np.nextafter(u, 2.0 if nudge > 0 else -1.0)) if nudge else u
        sampler = Sampler(**options)  # type: ignore[arg-type]
        assert sampler(scores, Drawn(u)) == draw(warp(scores, **options), Drawn(u))  # type: ignore[arg-type]


def test_the_quick_path_rechecks_what_it_cannot_call() -> None:
    scores = np.array([2.0, 1.0, 0.5, 0.0, -1.0], dtype=np.float32)
    options = {"temperature": 1.0, "top_p": 1.0}
    sampler = Sampler(**options)  # type: ignore[arg-type]
    edges = boundaries(scores, **options)
    for u in edges:
        assert sampler(scores, Drawn(u)) == draw(warp(scores, **options), Drawn(u))  # type: ignore[arg-type]
    assert sampler.rechecked == len(edges)
    middle = (edges[0] + edges[1]) / 2  # well inside a token's interval: decided quickly
    assert sampler(scores, Drawn(middle)) == 1 and sampler.rechecked == len(edges)
    # top_p right at the mass ranked above a token: is it in the nucleus or not?
    probs = np.sort(warp(scores, temperature=1.0))[::-1]
    at = float(probs[:2].sum())
    for top_p in (at, float(np.nextafter(at, 0.0)), float(np.nextafter(at, 1.0))):
        sampler = Sampler(temperature=1.0, top_p=top_p)
        for seed in range(5):
            same_draws(scores, seed, temperature=1.0, top_p=top_p)
        sampler(scores, np.random.default_rng(0))
        assert sampler.rechecked == 1


@settings(max_examples=300, deadline=None)
@given(row=scores_rows, temperature=st.sampled_from([0.2, 0.8, 1.0, 1.7]), seed=st.integers(0, 9))
def test_its_log_probability_is_token_logprob(
    row: list[float], temperature: float, seed: int
) -> None:
    from termlm.decoding.contracts import token_logprob

    scores = np.asarray(row, dtype=np.float32)
    sampler = Sampler(temperature=temperature, top_p=0.9)
    token = sampler(scores, np.random.default_rng(seed))
    expected = token_logprob(scores, token)
    got = sampler.logprob(scores, token)
    assert got == expected or (math.isnan(got) and math.isnan(expected))
    other = scores.copy()  # another row: computed afresh, never the latest call's numbers
    assert sampler.logprob(other, token) == token_logprob(other, token) or math.isnan(expected)
    flipped = scores[::-1].copy()  # another row with its maximum elsewhere
    assert (
        sampler.logprob(flipped, token) == token_logprob(flipped, token)
        or not np.isfinite(flipped).any()
    )
