"""The kept-buffer sampler draws exactly what ``draw(warp(...))`` draws, for the same generator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from termlm.decoding.sampler import SMALL_VOCAB, Sampler
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
    asked: list[int] = []

    def given_scores() -> np.ndarray:
        asked.append(1)
        return scores

    for t in {token, int(np.argmax(scores)), len(row) - 1}:  # any token of the latest row
        want = token_logprob(scores, t)
        got = sampler.logprob(t, given_scores)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12) or (
            math.isnan(got) and math.isnan(want)
        )
    quick = len(row) <= SMALL_VOCAB and math.isfinite(expected)
    if quick and np.isfinite(scores).all() and np.ptp(scores) < 20:
        assert not asked  # the quick path's own numbers, without asking for the scores


def test_big_scores_and_a_low_temperature_take_the_exact_path_without_warnings() -> None:
    import warnings

    from termlm.decoding.contracts import token_logprob

    for row in ([800.0, 799.0, 1.0], [3.0, 2.0, 1.0], [-900.0, -901.0, -950.0]):
        scores = np.asarray(row, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for temperature in (0.01, 0.8, 3.0):
                same_draws(scores, 2, temperature=temperature, top_p=0.9)
                same_draws(scores, 2, temperature=temperature, top_p=1.0)
                # exp(800) overflows at temperature 1 only, when the log-probability is asked
                sampler = Sampler(temperature=temperature, top_p=0.9)
                token = sampler(scores, np.random.default_rng(0))
                assert sampler.logprob(token, lambda: scores) == pytest.approx(  # noqa: B023
                    token_logprob(scores, token), rel=1e-12, abs=1e-12
                )


def processed(logits: np.ndarray, bans: tuple[int, ...]) -> np.ndarray:
    """What the processor chain makes of the logits when banning is all it does."""
    out = logits.astype(np.float32, copy=True)
    out[list(bans)] = -np.inf
    return np.where(np.isnan(out), np.float32(-np.inf), out)


@settings(max_examples=300, deadline=None)
@given(
    row=st.lists(
        st.one_of(st.floats(-30, 30, width=32), st.sampled_from([0.0, -math.inf, math.nan])),
        min_size=1,
        max_size=200,
    ),
    bans=st.sets(st.integers(0, 3), max_size=3),
    temperature=st.sampled_from([0.2, 0.8, 1.0, 1.7]),
    top_p=st.sampled_from([0.5, 0.9, 0.95, 1.0]),
    seed=st.integers(0, 2**31),
)
def test_from_logits_draws_what_the_processed_scores_draw(
    row: list[float], bans: set[int], temperature: float, top_p: float, seed: int
) -> None:
    from termlm.decoding.contracts import token_logprob

    logits = np.asarray(row, dtype=np.float32)
    banned = tuple(sorted(b for b in bans if b < logits.shape[0]))
    scores = processed(logits, banned)
    options = {"temperature": temperature, "top_p": top_p}
    sampler = Sampler(**options)  # type: ignore[arg-type]
    reference, fast = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(3):
        token = sampler.from_logits(logits, banned, fast, lambda: scores)
        assert token == draw(warp(scores, **options), reference)
        want = token_logprob(scores, token)
        got = sampler.logprob(token, lambda: scores)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12) or (
            math.isnan(got) and math.isnan(want)
        )
    assert fast.random() == reference.random()


def test_from_logits_asks_for_the_processed_scores_only_for_a_row_it_hands_on() -> None:
    logits = np.array([5.0, 1.0, 0.5, 0.0, -1.0], dtype=np.float32)
    asked: list[int] = []

    def scores() -> np.ndarray:
        asked.append(1)
        return processed(logits, (0,))

    sampler = Sampler(temperature=1.0, top_p=1.0)
    edges = boundaries(processed(logits, (0,)), temperature=1.0, top_p=1.0)
    middle = (edges[0] + edges[1]) / 2
    assert sampler.from_logits(logits, (0,), Drawn(middle), scores) == 2  # type: ignore[arg-type]
    assert not asked
    assert sampler.from_logits(logits, (0,), Drawn(edges[1]), scores) == 3  # type: ignore[arg-type]
    assert len(asked) == 1 and sampler.rechecked == 1
    every = (0, 1, 2, 3, 4)  # all banned: the exact path says what then (the scores asked)
    sampler.from_logits(logits, every, np.random.default_rng(0), lambda: processed(logits, every))


@settings(max_examples=300, deadline=None)
@given(
    row=st.lists(
        st.one_of(st.floats(-30, 30, width=32), st.sampled_from([0.0, -math.inf])),
        min_size=1,
        max_size=100,
    ),
    bans=st.sets(st.integers(0, 3), max_size=3),
)
def test_token_logprob_with_banned_ids_is_the_banned_rows(row: list[float], bans: set[int]) -> None:
    """What greedy uses on the logits when no processor is at work: the same numbers as on the
    processed scores, to the last bit."""
    from termlm.decoding.contracts import token_logprob

    logits = np.asarray(row, dtype=np.float32)
    banned = tuple(sorted(b for b in bans if b < logits.shape[0]))
    scores = processed(logits, banned)
    best = int(logits.argmax())
    for token in {0, best, logits.shape[0] - 1}:
        want = token_logprob(scores, token)
        got = token_logprob(logits, token, banned=banned)
        assert got == want or (math.isnan(got) and math.isnan(want))
        if best not in banned and math.isfinite(logits.item(best)):
            assert token_logprob(logits, token, best=best, banned=banned) == token_logprob(
                scores, token, best=best
            )


@given(seed=st.integers(0, 2**32), block=st.integers(1, 70), n=st.integers(0, 200))
def test_uniforms_drawn_ahead_are_the_generators_own(seed: int, block: int, n: int) -> None:
    from termlm.decoding.sampler import Uniforms

    ahead = Uniforms(np.random.default_rng(seed), block=block)
    one_by_one = np.random.default_rng(seed)
    assert [ahead.random() for _ in range(n)] == [one_by_one.random() for _ in range(n)]
