"""Sampling frequencies match the intended distributions (chi-square, fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from termlm.decoding import build_plugin_manager, generate
from termlm.decoding.events import DoneEvent
from termlm.decoding.sampling import draw, warp
from termlm.decoding.testing import BigramModel, char_tokenizer

# 99.9% quantiles of the chi-square distribution, by degrees of freedom
CRITICAL = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322, 8: 26.124}
LOGITS = np.array([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0])


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def chi_square_ok(counts: np.ndarray, expected_p: np.ndarray) -> bool:
    """Zero-probability tokens never drawn, and the rest pass a chi-square test at 0.1%."""
    assert counts[expected_p == 0].sum() == 0
    expected = expected_p * counts.sum()
    big = expected >= 5
    small = (expected > 0) & ~big  # rare tokens are pooled into one bin, as usual
    observed = [*counts[big], counts[small].sum()]
    wanted = [*expected[big], expected[small].sum()]
    if wanted[-1] < 5:  # the pooled bin is too small on its own: fold it into the last bin
        extra_o, extra_w = observed.pop(), wanted.pop()
        observed[-1] += extra_o
        wanted[-1] += extra_w
    o, e = np.array(observed, dtype=float), np.array(wanted)
    stat = float(((o - e) ** 2 / e).sum())
    dof = len(e) - 1
    return dof == 0 or stat < CRITICAL[dof]


def draws(probs: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.bincount([draw(probs, rng) for _ in range(n)], minlength=probs.shape[0])


def keep_renorm(p: np.ndarray, keep: np.ndarray) -> np.ndarray:
    q = np.where(keep, p, 0.0)
    return q / q.sum()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature(temperature: float) -> None:
    expected = softmax(LOGITS / temperature)
    probs = warp(LOGITS, temperature=temperature)
    np.testing.assert_allclose(probs, expected, rtol=1e-9)
    assert chi_square_ok(draws(probs, 8000, seed=1), expected)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k(k: int) -> None:
    p = softmax(LOGITS)
    expected = keep_renorm(p, np.arange(len(p)) < k)  # LOGITS is sorted, best first
    probs = warp(LOGITS, top_k=k)
    np.testing.assert_allclose(probs, expected, atol=1e-12)
    assert chi_square_ok(draws(probs, 6000, seed=2), expected)


@pytest.mark.parametrize("top_p", [0.3, 0.6, 0.9])
def test_top_p(top_p: float) -> None:
    p = softmax(LOGITS)
    before = np.cumsum(p) - p
    expected = keep_renorm(p, before < top_p)
    probs = warp(LOGITS, top_p=top_p)
    np.testing.assert_allclose(probs, expected, atol=1e-12)
    assert chi_square_ok(draws(probs, 6000, seed=3), expected)


@pytest.mark.parametrize("min_p", [0.1, 0.3, 0.7])
def test_min_p(min_p: float) -> None:
    p = softmax(LOGITS)
    expected = keep_renorm(p, p >= min_p * p.max())
    probs = warp(LOGITS, min_p=min_p)
    np.testing.assert_allclose(probs, expected, atol=1e-12)
    assert chi_square_ok(draws(probs, 6000, seed=4), expected)


def test_typical_keeps_the_least_surprising() -> None:
    # one very likely token and many unlikely: the entropy is low, so the likely one is kept
    logits = np.array([5.0, 0.0, 0.0, 0.0, 0.0])
    probs = warp(logits, typical_p=0.2)
    assert probs[0] == pytest.approx(1.0)


def test_generate_samples_the_warped_distribution() -> None:
    """End to end: a model whose scores never change; every token is one draw."""
    tok = char_tokenizer("abcdef")  # ids 0..7; 'a'..'f' are 2..7
    logits = np.array([-30.0, -30.0, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5], dtype=np.float32)
    model = BigramModel(np.tile(logits, (tok.vocab_size, 1)), context=10_000)
    registry = build_plugin_manager(entry_points=False, user_dir=False)
    options = {"temperature": 0.7, "top_k": 5, "top_p": 1.0}
    events = list(
        generate(model, tok, "a", registry=registry, options=options, max_new_tokens=3000, seed=11)
    )
    result = events[-1].result  # type: ignore[union-attr]
    assert isinstance(events[-1], DoneEvent) and len(result.token_ids) == 3000
    counts = np.bincount(result.token_ids, minlength=tok.vocab_size)
    expected = keep_renorm(
        softmax(logits.astype(np.float64) / 0.7), (np.arange(8) >= 2) & (np.arange(8) < 7)
    )
    assert chi_square_ok(counts, expected)
