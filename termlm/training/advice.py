"""What training says about itself: the expected time, overfitting, how to extend a finished run."""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path

from termlm.training.checkpoint import TrainerState
from termlm.training.evalplan import EvalPlan
from termlm.training.options import TrainOptions


def expected_time(
    state: TrainerState,
    total_steps: int | None,
    budget: float | None,
    per_epoch: int,
    plan: EvalPlan,
    evals: int,
) -> str:
    rate = state.step / max(state.elapsed - state.val_seconds, 1e-9)
    line = f"{rate:,.1f} steps/s"
    if total_steps and (budget is None or total_steps / rate < budget):
        left = (total_steps - state.step) / rate
        line += f": about {duration(left)} left for {total_steps:,} steps"
    elif budget:
        steps = rate * budget
        line += (
            f": about {steps:,.0f} steps ({steps / per_epoch:,.2f} epochs) "
            f"in the {duration(budget)} budget"
        )
    return line


class RecentLoss:
    """The mean training loss of the last `window` steps: beside a validation, the loss the model
    has now (a mean since the start of the run, or since the last validation, would include the
    much higher losses of its first steps, and read worse than the validation loss)."""

    def __init__(self, window: int = 50) -> None:
        self._losses: deque[float] = deque(maxlen=window)

    def add(self, loss: float) -> None:
        self._losses.append(loss)

    def mean(self) -> float:
        return sum(self._losses) / len(self._losses) if self._losses else float("nan")


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def overfitting_note(state: TrainerState, train_mean: float, patience: int | None) -> str:
    """A line when validation has not improved for two validations while training loss fell."""
    if state.evals_without_gain < 2 or state.best_train is None:
        return ""
    if train_mean >= state.best_train:
        return ""
    stop = (
        f"; training stops after {patience} validations without gain"
        if patience
        else " (--patience N stops it)"
    )
    return (
        f"overfitting: validation has not improved for {state.evals_without_gain} validations "
        f"while the training loss fell ({state.best_train:.3f} -> {train_mean:.3f}); "
        f"the best weights (step {state.best_step}) are kept{stop}"
    )


def finished_run_advice(
    run_dir: Path,
    state: TrainerState,
    options: TrainOptions,
    total_steps: int | None,
    budget: float | None,
    per_epoch: int,
) -> tuple[str, str]:
    """(what happened, how to train further) for a resumed run that has used its budget."""
    if budget is not None and (
        state.elapsed >= budget or (state.budget_done is not None and budget <= state.budget_done)
    ):
        minutes = state.elapsed / 60.0
        more = round(2 * (options.minutes or minutes), 2)
        return (
            f"the run in {run_dir} has used its --minutes {options.minutes:g} budget "
            f"({minutes:.1f} min, {state.step:,} steps)",
            f"train it further with a larger total budget: termlm train --resume {run_dir} "
            f"--minutes {more:g}",
        )
    done_epochs = state.step / max(per_epoch, 1)
    if options.max_steps is not None:
        return (
            f"the run in {run_dir} has done its --max-steps {options.max_steps:,}",
            f"train it further with: termlm train --resume {run_dir} "
            f"--max-steps {options.max_steps * 2}",
        )
    more_epochs = max(1, math.ceil(done_epochs * 2))
    return (
        f"the run in {run_dir} has done its {state.step:,} steps ({done_epochs:.1f} epochs)",
        f"train it further with: termlm train --resume {run_dir} --epochs {more_epochs}",
    )
