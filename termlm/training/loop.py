"""The training loop: AdamW with warm-up and cosine decay, clipping, validation, checkpoints,
early stopping, a divergence guard, Ctrl-C and resume, and DistributedDataParallel under torchrun."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from termlm.errors import RunError, TermlmError
from termlm.training import distributed
from termlm.training.advice import (
    RecentLoss,
    expected_time,
    finished_run_advice,
    overfitting_note,
)
from termlm.training.averaging import WeightAverage, averaged
from termlm.training.checkpoint import (
    TrainerState,
    append_metrics,
    load_trainer,
    load_weights,
    save_checkpoint,
    save_weights,
    trim_metrics,
    write_json,
)
from termlm.training.clock import budget_clock
from termlm.training.defaults import default_threads
from termlm.training.endings import (
    TrainingDiverged,
    TrainingInterrupted,
    TrainingWriteFailed,
    Written,
)
from termlm.training.evaluation import (
    EvalResult,
    eval_batches,
    evaluate,
    evaluate_batches,
    evaluate_training_accuracy,
    loss_on,
    plan_validation,
)
from termlm.training.models import build_model
from termlm.training.optim import AdamW, parameter_groups
from termlm.training.options import TrainOptions
from termlm.training.prepare import prepare
from termlm.training.progress import TrainProgress
from termlm.training.result import final_result
from termlm.training.sampling import sample_text

__all__ = [
    "EvalResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainingWriteFailed",
    "eval_batches",
    "evaluate",
    "evaluate_batches",
    "train",
]


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
    where = Written()
    finished = False
    try:
        result = _train(
            options,
            dist,
            show_progress=show_progress,
            resume=resume,
            resume_arch=resume_arch,
            where=where,
            live_plot=live_plot,
        )
        finished = True
        return result
    except OSError as exc:  # a full disk, a file-size limit, a lost permission while training
        if where.run_dir is None:
            raise
        raise TrainingWriteFailed(where, exc) from None
    finally:
        distributed.teardown(dist, finished=finished)


def _train(
    options: TrainOptions,
    dist: distributed.DistInfo,
    *,
    show_progress: bool,
    resume: str | None,
    resume_arch: str | None,
    where: Written,
    live_plot: bool = True,
) -> dict[str, Any]:
    started = time.perf_counter()
    clock = budget_clock(options.budget_clock)
    talk = TrainProgress(
        enabled=show_progress and dist.is_main,
        total_steps=None,
        budget_seconds=None,
        live_plot=False,
    )
    torch.manual_seed(options.seed)
    device = dist.device or pick_device(options.device)

    prepared = prepare(
        options,
        resume_dir=Path(resume) if resume else None,
        resume_arch=resume_arch,
        show_progress=show_progress and dist.is_main,
        writes_files=dist.is_main,
        say=talk.say,
    )
    options = prepared.options  # on --resume, the run's own options (threads included)
    threads = _set_threads(options, device)
    run_dir = prepared.run_dir
    model = build_model(prepared.model_config)
    if prepared.finetune is not None:
        prepared.finetune.apply(model)
    model = model.to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = AdamW(
        parameter_groups(model, options.weight_decay),
        lr=options.lr,
        weight_decay=options.weight_decay,
        betas=(0.9, 0.99),
    )
    average = WeightAverage(optimizer.params, options.ema) if options.ema > 0 else None
    state = TrainerState()
    where.run_dir = run_dir
    if resume:
        load_weights(model, run_dir / "last.safetensors")
        state = load_trainer(run_dir, optimizer, average)
        if dist.is_main:  # lines of steps after the checkpoint are done again
            trim_metrics(run_dir, state.step)
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
        or (budget is not None and state.budget_done is not None and budget <= state.budget_done)
    ):
        raise RunError(
            *finished_run_advice(run_dir, state, options, total_steps, budget, per_epoch)
        )
    talk.say_setup(
        prepared,
        params=params,
        device=f"{device.type}" + (f", {threads}" if device.type == "cpu" else ""),
        per_epoch=per_epoch,
        total_steps=total_steps,
        budget=budget,
        epochs=epochs,
    )
    plan = plan_validation(
        options,
        prepared,
        state,
        total_steps,
        budget,
        validate=lambda n: evaluate(model, prepared, device, token_cap=n).tokens,
        sample=lambda: sample_text(model, prepared, seed=options.seed, lines=1),
    )
    state.eval_tokens = plan.tokens if plan.tokens is not None else 0
    talk.say(plan.describe())
    # the final full validation is part of a timed run's budget
    reserve = plan.expected_seconds(plan.total) if (budget and plan.final_all) else 0.0
    next_eval_time = (
        (state.elapsed // plan.every_seconds + 1) * plan.every_seconds
        if plan.every_seconds
        else 0.0
    )
    last_val_seconds = plan.expected_seconds(plan.reads) + plan.sample_seconds

    progress = TrainProgress(
        enabled=show_progress and dist.is_main,
        total_steps=total_steps,
        budget_seconds=budget,
        live_plot=live_plot,
    )
    window_start = time.perf_counter()
    window_tokens = 0
    run_clock = clock() - state.elapsed
    last_loss = float("nan")
    correct_sum, target_sum = 0, 0
    recent_losses = RecentLoss()  # the training loss shown beside validation: recent steps only
    stop_reason = "done"
    interrupted = False
    estimate_said = resume is not None

    def progress_fraction() -> float:
        fractions = []
        if total_steps:
            fractions.append(state.step / total_steps)
        if budget:
            fractions.append(state.elapsed / max(budget - reserve, 1e-9))
        return max(fractions) if fractions else 0.0

    def run_validation() -> EvalResult:
        return evaluate(model, prepared, device, token_cap=plan.tokens)

    where.saved_step = state.step if resume else None

    def checkpoint() -> None:
        where.step = state.step
        if dist.is_main:
            save_checkpoint(run_dir, model, optimizer, state, average)
        where.saved_step = state.step

    train_model.train()
    progress.start(state.step, state.elapsed)
    try:
        while True:
            epoch_batches = batches.epoch(state.epoch)
            own = distributed.rank_share(epoch_batches, dist)
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
                if average is not None:
                    average.update()
                last_loss = float(loss.detach())
                recent_losses.add(last_loss)
                correct_sum += int(correct)
                target_sum += batch.targets.size
                if state.initial_loss is None:
                    state.initial_loss = last_loss
                state.step += 1
                where.step = state.step
                state.batch_in_epoch += 1
                state.tokens_seen += batch.targets.size * dist.world_size
                window_tokens += batch.inputs.size * dist.world_size
                state.elapsed = clock() - run_clock

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
                if not estimate_said and (state.step >= 20 or state.elapsed > 3.0):
                    estimate_said = True
                    progress.say(
                        expected_time(state, total_steps, budget, per_epoch, plan, options.evals)
                    )
                if now - window_start > 5.0:
                    window_start, window_tokens = now, 0

                due = (plan.every_steps and state.step % plan.every_steps == 0) or (
                    plan.every_seconds
                    and state.elapsed >= next_eval_time
                    and plan.allowed(state.val_seconds, state.elapsed, last_val_seconds)
                )
                finished = (total_steps is not None and state.step >= total_steps) or (
                    budget is not None and state.elapsed + reserve + last_val_seconds >= budget
                )
                if dist.world_size > 1:  # rank 0's clock decides for everyone
                    due = distributed.agree(bool(due), dist)
                    finished = distributed.agree(finished, dist)
                if due or finished:
                    if plan.every_seconds:
                        next_eval_time = (
                            state.elapsed // plan.every_seconds + 1
                        ) * plan.every_seconds
                    improved = False
                    if dist.is_main:
                        val_start = clock()
                        with averaged(average):  # validated, kept and sampled: the average
                            val = run_validation()
                            improved = val.loss < state.best_val - 1e-4
                            train_mean = recent_losses.mean()
                            if improved:
                                state.best_val, state.best_step = val.loss, state.step
                                state.best_train = train_mean
                                state.evals_without_gain = 0
                                save_weights(model, run_dir / "best.safetensors")
                            else:
                                state.evals_without_gain += 1
                            sample = sample_text(
                                model, prepared, seed=options.seed + state.step, lines=1
                            )
                        last_val_seconds = clock() - val_start
                        state.val_seconds += last_val_seconds
                        record = {
                            "step": state.step,
                            "epoch": state.epoch + 1,
                            "seconds": round(state.elapsed, 2),
                            "tokens": state.tokens_seen,
                            "train_loss": train_mean,
                            "train_accuracy": accuracy,
                            "val_loss": val.loss,
                            "val_ppl": math.exp(min(val.loss, 50)),
                            "val_tokens": val.tokens,
                            "val_seconds": round(last_val_seconds, 3),
                            "lr": options.lr * factor,
                            "tokens_per_s": tok_s,
                            "sample": sample,
                        }
                        append_metrics(run_dir, record)
                        progress.log_validation(record, improved)
                        warning = overfitting_note(state, train_mean, options.patience)
                        if warning:
                            progress.say(warning)
                        correct_sum, target_sum = 0, 0
                        checkpoint()
                        # validation time is not training time: tokens/s restarts after it
                        window_start, window_tokens = time.perf_counter(), 0
                        state.elapsed = clock() - run_clock
                    if options.patience and state.evals_without_gain >= options.patience:
                        stop_reason = (
                            f"early stop: no gain in {options.patience} validations "
                            f"(best at step {state.best_step}, kept)"
                        )
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

    if (
        budget is not None
        and stop_reason == "done"
        and not (total_steps is not None and state.step >= total_steps)
    ):
        state.budget_done = budget
    checkpoint()
    if stop_reason != "done":
        talk.say(stop_reason)
    # Final figures: the best weights, on every validation token when that was planned.
    if dist.is_main and (run_dir / "best.safetensors").exists():
        load_weights(model, run_dir / "best.safetensors")
    during = EvalResult(state.best_val, plan.reads, float("nan"))
    if not dist.is_main:
        final = EvalResult(float("nan"), 0, 0.0)
    elif plan.final_all or not math.isfinite(state.best_val):
        final = evaluate(model, prepared, device)
    else:
        final = during
    result = final_result(
        final,
        plan=plan,
        state=state,
        prepared=prepared,
        options=options,
        params=params,
        per_epoch=per_epoch,
        seconds=time.perf_counter() - started,
        stop_reason=stop_reason,
        run_dir=run_dir,
        train_accuracy=evaluate_training_accuracy(model, prepared, device),
        sample=sample_text(
            model, prepared, prepared.final_sample_tokens, seed=options.seed, lines=2
        ),
        world_size=dist.world_size,
    )
    if dist.world_size > 1:
        result["ranks_in_sync"] = distributed.weights_in_sync(model, dist)
    if dist.is_main:
        write_json(run_dir / "result.json", result)
        (run_dir / "interrupted.json").unlink(missing_ok=True)
    return result


def _set_threads(options: TrainOptions, device: torch.device) -> str:
    """Apply --threads (the run's own on --resume), or the measured default; say which."""
    if options.threads:
        torch.set_num_threads(options.threads)
        return f"{options.threads} thread{'s' if options.threads > 1 else ''} (--threads)"
    if device.type != "cpu":
        return ""
    choice = default_threads()
    torch.set_num_threads(choice.threads)
    return f"{choice.threads} thread{'s' if choice.threads > 1 else ''} ({choice.reason})"
