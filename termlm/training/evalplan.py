"""When to validate and on how many tokens, so that validation stays a small share of a run.

A run by steps or epochs validates ``evals`` times (or every ``--eval-every`` steps) on the first
``--eval-tokens`` validation tokens: the same tokens each time, so the figures compare. A run on a
wall-clock budget first times the model on a few validation tokens, sizes each validation so that
they take about ``EVAL_SHARE`` of the budget, and postpones a validation while validation has
taken more than that share of the time so far. The final figure reads every validation token
when that is expected to fit in the same share; otherwise it is the best validation's figure,
labelled with the tokens it read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

EVAL_SHARE = 0.05  # validations are paced to this share of a timed run's time so far
EVAL_ALLOWANCE = 0.08  # and, the last one included, take at most this share of its budget
DEFAULT_EVAL_TOKENS = 32768
MIN_EVAL_TOKENS = 256
# a window model reads a whole window per token and pays as much again for its sample: in a
# short slot 256 tokens and two samples took 6 to 10% of it, so its floor is lower
MIN_WINDOW_EVAL_TOKENS = 128
MIN_VALIDATIONS = 2  # a timed run sizes its validations so that at least this many fit


@dataclass
class EvalPlan:
    tokens: int | None  # validation tokens read by each validation (None: all of them)
    total: int  # validation tokens there are
    every_steps: int | None
    every_seconds: float | None
    share: float | None  # cap on (validation seconds / seconds so far); None: no cap
    final_all: bool  # the final figure reads every validation token
    seconds_per_token: float = 0.0  # measured (timed runs), 0 when not measured
    allowance: float | None = None  # seconds all validations may take, the last one included
    sample_seconds: float = 0.0  # the sample shown with each validation (measured, timed runs)

    @property
    def reads(self) -> int:
        return self.total if self.tokens is None else self.tokens

    def expected_seconds(self, tokens: int) -> float:
        return tokens * self.seconds_per_token

    def allowed(self, val_seconds: float, elapsed: float, last: float) -> bool:
        """Whether a due validation may run now: paced to the share of the time so far, and
        leaving room in the allowance for the last validation."""
        if self.share is None:
            return True
        if self.allowance is not None and val_seconds + 2 * last > self.allowance:
            return False
        return val_seconds + last <= self.share * max(elapsed, 1e-9)

    def describe(self) -> str:
        what = (
            f"all {self.total:,} validation tokens"
            if self.tokens is None
            else f"the first {self.tokens:,} of {self.total:,} validation tokens"
        )
        if self.every_steps:
            when = "every step" if self.every_steps == 1 else f"every {self.every_steps:,} steps"
        elif self.every_seconds:
            when = f"every {self.every_seconds:,.0f} s"
        else:
            when = "at the end"
        cap = f", at most {self.share:.0%} of the time" if self.share else ""
        final = (
            "; the final figure reads all of them"
            if self.final_all and self.tokens is not None
            else ""
        )
        return f"validation on {what}, {when}{cap}{final}"


def measure_seconds_per_token(
    run: Callable[[int], int], available: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Seconds per validation token: ``run(n)`` validates on the first n tokens and returns how
    many it read. A short warm-up run first, then a longer one if the first was quick."""
    n = min(256, available)
    start = clock()
    read = max(1, run(n))
    took = clock() - start
    if took < 0.1 and available > n:
        n = min(2048, available)
        start = clock()
        read = max(1, run(n))
        took = clock() - start
    return took / read


def tokens_for_budget(
    seconds_per_token: float,
    budget: float,
    validations: int,
    total: int,
    fixed_seconds: float = 0.0,
    floor: int = MIN_EVAL_TOKENS,
) -> int | None:
    """Validation tokens per validation so that `validations` of them (each also costing
    `fixed_seconds`, the sample) take EVAL_SHARE of `budget`, between `floor` and
    DEFAULT_EVAL_TOKENS; None means all of them."""
    each = EVAL_SHARE * budget / max(validations, 1) - fixed_seconds
    affordable = each / max(seconds_per_token, 1e-9)
    tokens = int(min(DEFAULT_EVAL_TOKENS, max(floor, affordable)))
    return None if tokens >= total else tokens
