"""The training loop: AdamW with warm-up and cosine decay, clipping, validation, checkpoints,
early stopping, a divergence guard, Ctrl-C and resume, and DistributedDataParallel under torchrun."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from termlm import __version__
from termlm.errors import RunError, TermlmError
from termlm.runtime.evaluation import iter_eval_chunks, iter_window_examples
from termlm.training import distributed
from termlm.training.checkpoint import (
    TrainerState,
    append_metrics,
    load_trainer,
    load_weights,
    save_trainer,
    save_weights,
    write_json,
)
from termlm.training.data import Batch, PrefixBatches
from termlm.training.models import build_model
from termlm.training.optim import AdamW
from termlm.training.options import TrainOptions
from termlm.training.prepare import Prepared, prepare
from termlm.training.progress import TrainProgress
from termlm.training.sampling import greedy_continuation

LN2 = math.log(2.0)
EVAL_TOKEN_CAP = 32768  # validations during training look at this many tokens; the last at all


class TrainingDiverged(TermlmError):
    pass


@dataclass
class EvalResult:
    loss: float  # nats per token
    tokens: int
    accuracy: float


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TermlmError("--device cuda: no CUDA device is available", "use --device cpu or auto")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise TermlmError(
            "--device mps: Apple's MPS is not available here", "use --device cpu or auto"
        )
    return torch.device(name)


def lr_factor(progress: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up over the first `warmup` of the run, then cosine decay to `min_ratio`."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return max(progress / warmup, 1e-3)
    span = max(1e-9, 1.0 - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / span))
    return min_ratio + (1.0 - min_ratio) * cosine


def loss_on(
    model: torch.nn.Module, batch: Batch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the batch's targets, and the count of correct argmax guesses."""
    inputs = torch.from_numpy(batch.inputs).to(device)
    targets = torch.from_numpy(batch.targets).to(device)
    logits, _ = model(inputs)  # [B, T, V] (window model and last-only targets: [B, 1, V] used)
    logits = logits[:, -targets.shape[1] :]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    correct = (logits.argmax(-1) == targets).sum()
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
    was_training = model.training
    model.eval()
    total, count, correct = 0.0, 0, 0
    try:
        for batch in _eval_batches(prepared, batch_size, token_cap):
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


def _eval_batches(prepared: Prepared, batch_size: int, token_cap: int | None) -> list[Batch]:
    if isinstance(prepared.batches, PrefixBatches):
        src = prepared.batches
        return [
            Batch(src.inputs[i : i + batch_size], src.targets[i : i + batch_size])
            for i in range(0, len(src.inputs), batch_size)
        ]
    ids = prepared.val_ids
    context = prepared.model_config.context
    if token_cap is not None:
        ids = ids[: token_cap + 1]
    batches: list[Batch] = []
    if not prepared.model_config.stateful:
        examples = list(iter_window_examples(ids, context, prepared.tokenizer.pad_id))
        for i in range(0, len(examples), batch_size):
            part = examples[i : i + batch_size]
            batches.append(
                Batch(
                    np.stack([w for w, _ in part]), np.array([[t] for _, t in part], dtype=np.int64)
                )
            )
        return batches
    by_length: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for x, y in iter_eval_chunks(ids, context):
        by_length.setdefault(len(x), []).append((x, y))
    for chunks in by_length.values():
        for i in range(0, len(chunks), batch_size):
            group = chunks[i : i + batch_size]
            batches.append(Batch(np.stack([x for x, _ in group]), np.stack([y for _, y in group])))
    return batches


def _sample_text(model: torch.nn.Module, prepared: Prepared, n: int = 60) -> str:
    tokenizer = prepared.tokenizer
    prompt_ids = tokenizer.encode(prepared.sample_prompt)
    ids = greedy_continuation(
        model,
        tokenizer,
        prompt_ids,
        n,
        context=prepared.model_config.context,
        stateful=prepared.model_config.stateful,
        pad_prompt=prepared.options.recipe == "tutorial",
    )
    return tokenizer.decode(prompt_ids + ids)


def _bits_per_char(loss: float, tokens: int, chars: int) -> float:
    return loss * tokens / max(chars, 1) / LN2


def train(
    options: TrainOptions,
    *,
    show_progress: bool = True,
    resume: str | None = None,
    resume_arch: str | None = None,
    live_plot: bool = True,
) -> dict[str, Any]:
    """Train one model; returns the final figures (also written to result.json).

    ``live_plot``: at a terminal, a loss plot under the progress bar."""
    dist = distributed.setup()
    try:
        return _train(
            options,
            dist,
            show_progress=show_progress,
            resume=resume,
            resume_arch=resume_arch,
            live_plot=live_plot,
        )
    finally:
        distributed.teardown(dist)


def _train(
    options: TrainOptions,
    dist: distributed.DistInfo,
    *,
    show_progress: bool,
    resume: str | None,
    resume_arch: str | None,
    live_plot: bool = True,
) -> dict[str, Any]:
    started = time.perf_counter()
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    device = dist.device or pick_device(options.device)

    prepared = prepare(
        options,
        resume_dir=Path(resume) if resume else None,
        resume_arch=resume_arch,
        show_progress=show_progress and dist.is_main,
        writes_files=dist.is_main,
    )
    options = prepared.options  # on --resume, the run's own options
    run_dir = prepared.run_dir
    model = build_model(prepared.model_config).to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = AdamW(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay, betas=(0.9, 0.99)
    )
    state = TrainerState()
    if resume:
        load_weights(model, run_dir / "last.safetensors")
        state = load_trainer(run_dir, optimizer)
    elif dist.is_main:
        prepared.write_run_files()
    train_model: torch.nn.Module = distributed.wrap(model, dist)

    batches = prepared.batches
    per_epoch = batches.batches_per_epoch()
    epochs = options.epochs
    if epochs is None and options.minutes is None and options.max_steps is None:
        epochs = 10.0
    total_steps = options.max_steps or (math.ceil(epochs * per_epoch) if epochs else None)
    budget = options.minutes * 60.0 if options.minutes else None
    if resume and (
        (total_steps is not None and state.step >= total_steps)
        or (budget is not None and state.elapsed >= budget)
    ):
        raise RunError(
            f"the run in {run_dir} has already done its {state.step} steps",
            "give a larger budget to train it further, e.g. --resume RUN --epochs N or --minutes M",
        )
    eval_every_steps = max(1, (total_steps or 10**9) // options.evals) if total_steps else None
    eval_every_seconds = budget / options.evals if budget else None
    next_eval_time = (
        (state.elapsed // eval_every_seconds + 1) * eval_every_seconds
        if eval_every_seconds
        else 0.0
    )

    progress = TrainProgress(
        enabled=show_progress and dist.is_main,
        total_steps=total_steps,
        budget_seconds=budget,
        live_plot=live_plot,
    )
    window_start = time.perf_counter()
    window_tokens = 0
    run_clock = time.perf_counter() - state.elapsed
    last_loss = float("nan")
    correct_sum, target_sum = 0, 0
    stop_reason = "done"
    interrupted = False

    def progress_fraction() -> float:
        fractions = []
        if total_steps:
            fractions.append(state.step / total_steps)
        if budget:
            fractions.append(state.elapsed / budget)
        return max(fractions) if fractions else 0.0

    def run_validation(final: bool = False) -> EvalResult:
        result = evaluate(model, prepared, device, token_cap=None if final else EVAL_TOKEN_CAP)
        return result

    def checkpoint() -> None:
        if dist.is_main:
            save_weights(model, run_dir / "last.safetensors")
            save_trainer(run_dir, optimizer, state)

    train_model.train()
    progress.start(state.step, state.elapsed)
    try:
        while True:
            epoch_batches = batches.epoch(state.epoch)
            if (
                dist.world_size > 1
            ):  # every rank takes the same number of batches, or DDP would wait
                usable = max(
                    dist.world_size, len(epoch_batches) // dist.world_size * dist.world_size
                )
                own = (epoch_batches * dist.world_size)[:usable][dist.rank :: dist.world_size]
            else:
                own = epoch_batches
            done = False
            while state.batch_in_epoch < len(own):
                rows = own[state.batch_in_epoch]
                batch = batches.batch(rows)
                factor = lr_factor(progress_fraction(), options.warmup, options.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = options.lr * factor
                loss, correct = loss_on(train_model, batch, device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if options.clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), options.clip)
                optimizer.step()
                last_loss = float(loss.detach())
                correct_sum += int(correct)
                target_sum += batch.targets.size
                if state.initial_loss is None:
                    state.initial_loss = last_loss
                state.step += 1
                state.batch_in_epoch += 1
                state.tokens_seen += batch.targets.size * dist.world_size
                window_tokens += batch.inputs.size * dist.world_size
                state.elapsed = time.perf_counter() - run_clock

                if not math.isfinite(last_loss) or last_loss > 3.0 * state.initial_loss + 1.0:
                    raise TrainingDiverged(
                        f"training diverged at step {state.step} (loss {last_loss:.3g}, it began at {state.initial_loss:.3g})",
                        f"the best checkpoint so far is kept in {run_dir}; try a lower --lr (now {options.lr:g}) or a smaller --clip",
                    )

                now = time.perf_counter()
                tok_s = window_tokens / max(now - window_start, 1e-9)
                accuracy = correct_sum / max(target_sum, 1)
                progress.update(
                    state.step,
                    state.elapsed,
                    epoch=state.epoch + 1,
                    loss=last_loss,
                    accuracy=accuracy,
                    tokens_per_s=tok_s,
                )
                if now - window_start > 5.0:
                    window_start, window_tokens = now, 0

                due = (eval_every_steps and state.step % eval_every_steps == 0) or (
                    eval_every_seconds and state.elapsed >= next_eval_time
                )
                finished = (total_steps is not None and state.step >= total_steps) or (
                    budget is not None and state.elapsed >= budget
                )
                if dist.world_size > 1:  # rank 0's clock decides for everyone
                    due = distributed.agree(bool(due), dist)
                    finished = distributed.agree(finished, dist)
                if due or finished:
                    if eval_every_seconds:
                        next_eval_time = (
                            state.elapsed // eval_every_seconds + 1
                        ) * eval_every_seconds
                    improved = False
                    if dist.is_main:
                        val = run_validation()
                        improved = val.loss < state.best_val - 1e-4
                        if improved:
                            state.best_val, state.best_step = val.loss, state.step
                            state.evals_without_gain = 0
                            save_weights(model, run_dir / "best.safetensors")
                        else:
                            state.evals_without_gain += 1
                        sample = _sample_text(model, prepared)
                        record = {
                            "step": state.step,
                            "epoch": state.epoch + 1,
                            "seconds": round(state.elapsed, 2),
                            "tokens": state.tokens_seen,
                            "train_loss": last_loss,
                            "train_accuracy": accuracy,
                            "val_loss": val.loss,
                            "val_ppl": math.exp(min(val.loss, 50)),
                            "lr": options.lr * factor,
                            "tokens_per_s": tok_s,
                            "sample": sample,
                        }
                        append_metrics(run_dir, record)
                        progress.log_validation(record, improved)
                        correct_sum, target_sum = 0, 0
                        checkpoint()
                    if options.patience and state.evals_without_gain >= options.patience:
                        stop_reason = f"early stop: no gain in {options.patience} validations"
                        finished = True
                    finished = distributed.agree(finished, dist)
                if options.stop_after_steps and state.step >= options.stop_after_steps:
                    raise KeyboardInterrupt
                if finished:
                    done = True
                    break
            if done:
                break
            state.epoch += 1
            state.batch_in_epoch = 0
    except KeyboardInterrupt:
        interrupted = True
        checkpoint()
    except TrainingDiverged:
        progress.stop()
        if dist.is_main:  # `termlm runs` tells a diverged run from a killed one
            write_json(
                run_dir / "diverged.json",
                {
                    "step": state.step,
                    "loss": last_loss if math.isfinite(last_loss) else None,
                },
            )
        raise
    finally:
        progress.stop()

    if interrupted:
        if dist.is_main:
            write_json(run_dir / "interrupted.json", {"step": state.step})
        raise TrainingInterrupted(run_dir, state.step)

    checkpoint()
    # Final figures: the best weights on the whole validation text.
    if dist.is_main and (run_dir / "best.safetensors").exists():
        load_weights(model, run_dir / "best.safetensors")
    final = evaluate(model, prepared, device) if dist.is_main else EvalResult(float("nan"), 0, 0.0)
    train_acc = evaluate_training_accuracy(model, prepared, device)
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "val_loss": final.loss,
        "val_ppl": math.exp(min(final.loss, 50)),
        "val_bpc": _bits_per_char(final.loss, final.tokens, prepared.val_chars)
        if options.level == "char" or prepared.val_chars
        else None,
        "val_tokens": final.tokens,
        "train_accuracy": train_acc,
        "train_tokens_per_s": state.tokens_seen / max(state.elapsed, 1e-9),
        "params": params,
        "steps": state.step,
        "epochs": round(state.step / per_epoch, 3),
        "seconds": round(seconds, 3),
        "train_seconds": round(state.elapsed, 3),
        "stop_reason": stop_reason,
        "run_dir": str(run_dir),
        "sample": _sample_text(model, prepared, prepared.final_sample_tokens),
        "command": options.command,
        "termlm_version": __version__,
        "world_size": dist.world_size,
    }
    if dist.world_size > 1:
        result["ranks_in_sync"] = distributed.weights_in_sync(model, dist)
    if dist.is_main:
        write_json(run_dir / "result.json", result)
        (run_dir / "interrupted.json").unlink(missing_ok=True)
    return result


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


class TrainingInterrupted(TermlmError):
    def __init__(self, run_dir: Path, step: int) -> None:
        super().__init__(
            f"stopped at step {step}; a checkpoint is saved in {run_dir}",
            f"resume with: termlm train --resume {run_dir}",
        )
        self.run_dir = run_dir
        self.step = step
