"""Run folders: config, tokenizer, weights (safetensors, never pickle), trainer state.

    runs/NAME/
      config.json        {"model": ModelConfig, "train": TrainOptions, "corpus": {...}}
      tokenizer.json
      best.safetensors   weights with the best validation loss so far (with --ema: the average)
      last.safetensors   the latest weights (the raw ones, which training continues from)
      trainer.safetensors + trainer.json   optimizer moments, weight average, RNG, data
                         position (for --resume)
      metrics.jsonl      one JSON object per log line
      result.json        the final figures

Every file is written atomically; the three files of a checkpoint (last.safetensors,
trainer.safetensors, trainer.json) are all written before any of them replaces the old one, so a
write that fails (a full disk) leaves the previous checkpoint whole. A failed write is an OSError
with the system's reason and the file's name, never a library's own error.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from termlm.atomic import atomic_path, atomic_write_text
from termlm.errors import RunError
from termlm.training.averaging import WeightAverage
from termlm.training.optim import AdamW


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path.parent} has no {path.name}", "is it a termlm run folder?") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from None


def _os_error(exc: Exception, target: Path) -> OSError:
    """SafetensorError("... I/O error: No space left on device (os error 28)") -> OSError(28)."""
    found = re.search(r"os error (\d+)", str(exc))
    code = int(found.group(1)) if found else errno.EIO
    return OSError(code, os.strerror(code) if found else f"cannot write: {exc}", str(target))


@contextlib.contextmanager
def _interrupt_after() -> Iterator[None]:
    """Ctrl-C while a checkpoint is written takes effect once it is written whole (or failed).

    Without this a Ctrl-C could land between creating a temporary file and the code that removes
    it on failure, and leave it behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if previous is signal.default_int_handler:
            raise KeyboardInterrupt
        if callable(previous):
            previous(signal.SIGINT, None)


def _save(write: Callable[[str], None], target: Path, tmp: Path) -> None:
    try:
        write(str(tmp))
    except SafetensorError as exc:
        raise _os_error(exc, target) from None


def save_weights(model: torch.nn.Module, path: Path) -> None:
    with _interrupt_after(), atomic_path(path) as tmp:
        _save(lambda name: save_model(model, name), path, tmp)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    if not path.exists():
        raise RunError(
            f"{path.parent} has no {path.name}", "the run may not have saved a checkpoint yet"
        )
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except Exception as exc:  # a safetensors or shape error: the file does not fit this model
        raise RunError(f"the weights in {path} do not fit this model: {exc}") from None
    if missing or unexpected:
        raise RunError(
            f"the weights in {path} do not fit this model "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )


@dataclass
class TrainerState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0
    best_val: float = float("inf")
    best_step: int = 0
    evals_without_gain: int = 0
    initial_loss: float | None = None
    tokens_seen: int = 0
    val_seconds: float = 0.0  # time spent validating (inside `elapsed`)
    eval_tokens: int | None = None  # validation tokens per validation (0: all), fixed per run
    best_train: float | None = None  # mean training loss before the best validation
    budget_done: float | None = None  # the --minutes budget (seconds) the run finished


def save_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: AdamW,
    state: TrainerState,
    average: WeightAverage | None = None,
) -> None:
    """The weights (last.safetensors), the optimizer moments, the weight average and RNG
    (trainer.safetensors) and the loop's position (trainer.json): all three written, then all
    three put in place."""
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    tensors.update({f"opt.{k}": v for k, v in optimizer.state_tensors().items()})
    if average is not None:
        tensors.update(average.state_tensors())
    state_json = json.dumps({"state": state.__dict__}, indent=2) + "\n"
    with _interrupt_after(), contextlib.ExitStack() as stack:  # leaving: fsync, rename (reversed)
        weights = run_dir / "last.safetensors"
        _save(
            lambda name: save_model(model, name), weights, stack.enter_context(atomic_path(weights))
        )
        trainer = run_dir / "trainer.safetensors"
        _save(
            lambda name: save_file(tensors, name),
            trainer,
            stack.enter_context(atomic_path(trainer)),
        )
        stack.enter_context(atomic_path(run_dir / "trainer.json")).write_text(
            state_json, encoding="utf-8"
        )


def load_trainer(
    run_dir: Path, optimizer: AdamW, average: WeightAverage | None = None
) -> TrainerState:
    meta = read_json(run_dir / "trainer.json")
    path = run_dir / "trainer.safetensors"
    if not path.exists():
        raise RunError(f"{run_dir} has no trainer.safetensors", "it cannot be resumed")
    tensors = load_file(str(path))
    torch.set_rng_state(tensors.pop("rng.torch"))
    try:
        optimizer.load_state_tensors({k[4:]: v for k, v in tensors.items() if k.startswith("opt.")})
        if average is not None:
            average.load_state_tensors(tensors)
        return TrainerState(**meta["state"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"the trainer state in {run_dir} does not fit this model: {exc}") from None


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """One JSON line, whole or not at all: a write that fails half-way is cut off again."""
    line = (json.dumps(record) + "\n").encode("utf-8")
    fd = os.open(run_dir / "metrics.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            done = 0
            while done < len(line):
                done += os.write(fd, line[done:])
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def trim_metrics(run_dir: Path, step: int) -> None:
    """Drop the lines of steps after ``step`` (written after the checkpoint a run resumes from)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    kept: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut off by a crash
        if (
            isinstance(record, dict)
            and isinstance(record.get("step"), int)
            and record["step"] > step
        ):
            continue
        kept.append(line)
    if kept != lines:
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
