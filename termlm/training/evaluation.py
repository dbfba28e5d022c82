"""Validation: the loss of a model on cut validation ids, as `termlm eval` cuts them, and the
plan of how often and on how much a run validates."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from termlm.config import ModelConfig
from termlm.runtime.evaluation import iter_eval_chunks, iter_window_batches
from termlm.training.checkpoint import TrainerState
from termlm.training.clock import budget_clock
from termlm.training.data import Batch, PrefixBatches
from termlm.training.evalplan import (
    DEFAULT_EVAL_TOKENS,
    EVAL_ALLOWANCE,
    EVAL_SHARE,
    MIN_EVAL_TOKENS,
    MIN_VALIDATIONS,
    MIN_WINDOW_EVAL_TOKENS,
    EvalPlan,
    measure_seconds_per_token,
    tokens_for_budget,
)
from termlm.training.options import TrainOptions
from termlm.training.prepare import Prepared

LN2 = math.log(2.0)


@dataclass
class EvalResult:
    loss: float  # nats per token
    tokens: int
    accuracy: float


def loss_on(
    model: torch.nn.Module, batch: Batch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the batch's targets, and the count of correct argmax guesses."""
    inputs = torch.from_numpy(batch.inputs).to(device)
    targets = torch.from_numpy(batch.targets).to(device)
    loss, correct = model(inputs, targets=targets)  # the model's own training loss
    return loss, correct


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    prepared: Prepared,
    device: torch.device,
    *,
    token_cap: int | None = None,
    batch_size: int = 64,
) -> EvalResult:
    """Loss per token on the validation tokens, cut as `termlm eval` cuts them."""
    batches: Iterable[Batch]
    if isinstance(prepared.batches, PrefixBatches):
        src = prepared.batches
        batches = [
            Batch(src.inputs[i : i + batch_size], src.targets[i : i + batch_size])
            for i in range(0, len(src.inputs), batch_size)
        ]
    else:
        ids = prepared.val_ids if token_cap is None else prepared.val_ids[: token_cap + 1]
        batches = eval_batches(ids, prepared.model_config, prepared.tokenizer.pad_id, batch_size)
    return evaluate_batches(model, batches, device)


@torch.no_grad()
def evaluate_batches(
    model: torch.nn.Module, batches: Iterable[Batch], device: torch.device
) -> EvalResult:
    was_training = model.training
    model.eval()
    total, count, correct = 0.0, 0, 0
    try:
        for batch in batches:
            inputs = torch.from_numpy(batch.inputs).to(device)
            targets = torch.from_numpy(batch.targets).to(device)
            logits, _ = model(inputs)
            logits = logits[:, -targets.shape[1] :]
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
                )
            )
            count += targets.numel()
            correct += int((logits.argmax(-1) == targets).sum())
    finally:
        model.train(was_training)
    return EvalResult(total / max(count, 1), count, correct / max(count, 1))


FINAL_ALL_MAX_TOKENS = 1 << 20  # the final figure reads every validation token up to this many


def eval_batches(
    ids: np.ndarray, config: ModelConfig, pad_id: int, batch_size: int = 64
) -> Iterator[Batch]:
    """Validation ids cut for a model: context-long chunks, or one window per token. The
    batches are made as they are read, so memory does not grow with the ids."""
    if not config.stateful:
        return (
            Batch(windows, targets)
            for windows, targets in iter_window_batches(ids, config.context, pad_id, batch_size)
        )
    return _chunk_batches(ids, config.context, batch_size)


def _chunk_batches(ids: np.ndarray, context: int, batch_size: int) -> Iterator[Batch]:
    """Batches of context-long chunks in order, then the last, shorter chunk on its own."""
    group: list[tuple[np.ndarray, np.ndarray]] = []
    short: list[tuple[np.ndarray, np.ndarray]] = []
    for x, y in iter_eval_chunks(ids, context):
        if len(x) < context:
            short.append((x, y))  # only the last chunk can be shorter
            continue
        group.append((x, y))
        if len(group) == batch_size:
            yield _stacked(group)
            group = []
    for rest in (group, short):
        if rest:
            yield _stacked(rest)


def _stacked(group: list[tuple[np.ndarray, np.ndarray]]) -> Batch:
    inputs = np.stack([x for x, _ in group]).astype(np.int64)  # ids may be uint8/16
    return Batch(inputs, np.stack([y for _, y in group]).astype(np.int64))


def validation_tokens(prepared: Prepared) -> int:
    if isinstance(prepared.batches, PrefixBatches):
        return len(prepared.batches.inputs)
    return max(len(prepared.val_ids) - 1, 0)


@torch.no_grad()
def evaluate_training_accuracy(
    model: torch.nn.Module, prepared: Prepared, device: torch.device
) -> float | None:
    """Accuracy over the whole training set for the tutorial recipe (its own measure of success)."""
    if not isinstance(prepared.batches, PrefixBatches):
        return None
    src = prepared.batches
    was = model.training
    model.eval()
    logits, _ = model(torch.from_numpy(src.inputs).to(device))
    model.train(was)
    return float((logits[:, -1].argmax(-1).cpu().numpy() == src.targets[:, 0]).mean())


def bits_per_char(loss: float, tokens: int, chars: int) -> float:
    return loss * tokens / max(chars, 1) / LN2


def plan_validation(
    options: TrainOptions,
    prepared: Prepared,
    state: TrainerState,
    total_steps: int | None,
    budget: float | None,
    *,
    validate: Callable[[int], int],
    sample: Callable[[], object],
) -> EvalPlan:
    """How often, and on how many tokens, a run validates: sized so validation keeps its share
    of a time budget. ``validate(n)`` runs the loop's own validation on the first n tokens and
    returns how many it read (timed to size the plan); ``sample`` draws one training sample,
    which each validation also pays for."""
    clock = budget_clock(options.budget_clock)
    total = validation_tokens(prepared)
    timed = budget is not None and not options.eval_every
    if options.eval_tokens is not None:
        tokens: int | None = options.eval_tokens or None
    elif state.eval_tokens is not None:  # a resumed run keeps its size, so figures compare
        tokens = state.eval_tokens or None
    elif isinstance(prepared.batches, PrefixBatches):
        tokens = None
    else:
        tokens = DEFAULT_EVAL_TOKENS
    if tokens is not None and tokens >= total:
        tokens = None
    seconds_per_token = sample_seconds = 0.0
    if timed and total > 0:
        seconds_per_token = measure_seconds_per_token(validate, total, clock)
        start = clock()
        sample()  # an untrained model: its longest
        sample_seconds = clock() - start
        if options.eval_tokens is None and state.eval_tokens is None and budget:
            tokens = tokens_for_budget(
                seconds_per_token,
                budget,
                MIN_VALIDATIONS,
                total,
                fixed_seconds=sample_seconds,
                floor=MIN_EVAL_TOKENS if prepared.model_config.stateful else MIN_WINDOW_EVAL_TOKENS,
            )
    every_steps: int | None = None
    every_seconds: float | None = None
    if options.eval_every:
        every_steps = options.eval_every
    elif options.eval_seconds:
        every_seconds = options.eval_seconds
    elif total_steps and not budget:
        every_steps = max(1, total_steps // options.evals)
    elif budget:
        every_seconds = budget / options.evals
    elif total_steps:
        every_steps = max(1, total_steps // options.evals)
    share = EVAL_SHARE if every_seconds else None
    # a validation part too large to read whole (a corpus larger than memory): the final figure
    # is the best validation's, on the tokens it read
    final_all = (
        options.final_eval
        and total <= FINAL_ALL_MAX_TOKENS
        and (tokens is None or budget is None or seconds_per_token * total <= EVAL_SHARE * budget)
    )
    return EvalPlan(
        tokens=tokens,
        total=total,
        every_steps=every_steps,
        every_seconds=every_seconds,
        share=share,
        final_all=final_all,
        seconds_per_token=seconds_per_token,
        allowance=EVAL_ALLOWANCE * budget if (budget and share) else None,
        sample_seconds=sample_seconds,
    )
