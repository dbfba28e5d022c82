"""The record a finished run leaves: its final figures, written to result.json and returned."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from termlm import __version__
from termlm.training.checkpoint import TrainerState
from termlm.training.evalplan import EvalPlan
from termlm.training.evaluation import EvalResult, bits_per_char
from termlm.training.options import TrainOptions
from termlm.training.prepare import Prepared


def final_result(
    final: EvalResult,
    *,
    plan: EvalPlan,
    state: TrainerState,
    prepared: Prepared,
    options: TrainOptions,
    params: int,
    per_epoch: int,
    seconds: float,
    stop_reason: str,
    run_dir: Path,
    train_accuracy: float | None,
    sample: str,
    world_size: int,
) -> dict[str, Any]:
    """The figures of a run: `final` is the last validation (on every token when planned)."""
    train_seconds = max(state.elapsed - state.val_seconds, 1e-9)
    bpc: float | None = None
    if options.level == "char" or prepared.val_chars:
        bpc = bits_per_char(final.loss, final.tokens, prepared.val_chars)
    if final.tokens and prepared.val_chars and final.tokens < plan.total:
        # bits per character on a part of the validation text: its characters, pro rata
        bpc = bits_per_char(
            final.loss, final.tokens, prepared.val_chars * final.tokens // max(plan.total, 1)
        )
    result: dict[str, Any] = {
        "val_loss": final.loss,
        "val_ppl": math.exp(min(final.loss, 50)),
        "val_bpc": bpc,
        "val_tokens": final.tokens,
        "val_tokens_total": plan.total,
        "val_loss_during": state.best_val,
        "val_tokens_during": plan.reads,
        "best_step": state.best_step,
        "train_accuracy": train_accuracy,
        "train_tokens_per_s": state.tokens_seen / train_seconds,
        "params": params,
        "steps": state.step,
        "epochs": round(state.step / per_epoch, 3),
        "seconds": round(seconds, 3),
        "train_seconds": round(state.elapsed, 3),
        "val_seconds": round(state.val_seconds, 3),
        "val_share": round(state.val_seconds / max(state.elapsed, 1e-9), 4),
        "budget_clock": options.budget_clock,
        "stop_reason": stop_reason,
        "run_dir": str(run_dir),
        "sample": sample,
        "command": options.command,
        "termlm_version": __version__,
        "world_size": world_size,
    }
    if prepared.finetune is not None:
        result["init_from"] = prepared.finetune.lineage
    return result
