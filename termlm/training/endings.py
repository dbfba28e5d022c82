"""How a training run ends when it does not finish: diverged, interrupted, or a failed write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from termlm.errors import TermlmError


class TrainingDiverged(TermlmError):
    pass


@dataclass
class Written:
    """Where a run writes, and its last whole checkpoint: what a failed write must report."""

    run_dir: Path | None = None
    step: int = 0
    saved_step: int | None = None


class TrainingWriteFailed(TermlmError):
    def __init__(self, where: Written, exc: OSError) -> None:
        run_dir = where.run_dir
        what = f" {exc.filename}" if exc.filename else ""
        if where.saved_step is not None:
            hint = (
                f"the checkpoint of step {where.saved_step} in {run_dir} is intact; "
                f"free some space, then: termlm train --resume {run_dir}"
            )
        else:
            hint = f"no checkpoint was saved yet; free some space, remove {run_dir} and train again"
        super().__init__(
            f"training stopped at step {where.step}: cannot write{what}: {exc.strerror or exc}",
            hint,
        )


class TrainingInterrupted(TermlmError):
    def __init__(self, run_dir: Path, step: int) -> None:
        super().__init__(
            f"stopped at step {step}; a checkpoint is saved in {run_dir}",
            f"resume with: termlm train --resume {run_dir}",
        )
        self.run_dir = run_dir
        self.step = step
