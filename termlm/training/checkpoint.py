"""Run folders: config, tokenizer, weights (safetensors, never pickle), trainer state.

    runs/NAME/
      config.json        {"model": ModelConfig, "train": TrainOptions, "corpus": {...}}
      tokenizer.json
      best.safetensors   weights with the best validation loss so far
      last.safetensors   the latest weights
      trainer.safetensors + trainer.json   optimizer moments, RNG, data position (for --resume)
      metrics.jsonl      one JSON object per log line
      result.json        the final figures

Every file is written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from termlm.atomic import atomic_path, atomic_write_text
from termlm.errors import RunError
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


def save_weights(model: torch.nn.Module, path: Path) -> None:
    with atomic_path(path) as tmp:
        save_model(model, str(tmp))


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


def save_trainer(run_dir: Path, optimizer: AdamW, state: TrainerState) -> None:
    """Optimizer moments and RNG as tensors (safetensors), the rest as JSON."""
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    tensors.update({f"opt.{k}": v for k, v in optimizer.state_tensors().items()})
    with atomic_path(run_dir / "trainer.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(run_dir / "trainer.json", {"state": state.__dict__})


def load_trainer(run_dir: Path, optimizer: AdamW) -> TrainerState:
    meta = read_json(run_dir / "trainer.json")
    path = run_dir / "trainer.safetensors"
    if not path.exists():
        raise RunError(f"{run_dir} has no trainer.safetensors", "it cannot be resumed")
    tensors = load_file(str(path))
    torch.set_rng_state(tensors.pop("rng.torch"))
    try:
        optimizer.load_state_tensors({k[4:]: v for k, v in tensors.items() if k.startswith("opt.")})
        return TrainerState(**meta["state"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"the trainer state in {run_dir} does not fit this model: {exc}") from None


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
