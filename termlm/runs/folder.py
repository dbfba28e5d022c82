"""One run folder, or a folder of them, read without torch and within bounds.

A run folder is what `termlm train` writes (termlm/training/checkpoint.py): config.json,
metrics.jsonl (one record per validation), result.json when it finished, interrupted.json
when it was stopped, diverged.json when its loss ran away. A bake-off folder holds run
folders (and, from newer trainers, a bakeoff.json).
"""

from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 4 * 2**20  # config, result and markers are a few KB
MAX_METRICS_BYTES = 64 * 2**20  # metrics.jsonl: one line per validation
MAX_METRICS_LINES = 100_000
MAX_HEADER_BYTES = 16 * 2**20  # a safetensors header (names and shapes)
MAX_ENTRIES = 10_000  # folders looked at in one listing
RUNNING_SECONDS = 120.0  # a run with no end marker written to this recently is taken as running
LN2 = math.log(2.0)


@dataclass
class Point:
    """One validation record of metrics.jsonl."""

    step: int
    seconds: float | None
    tokens: float | None  # tokens seen so far (recorded, or estimated from the batch shape)
    train_loss: float | None
    val_loss: float | None
    sample: str


@dataclass
class Run:
    path: Path
    name: str
    corpus: str
    level: str
    arch: str
    params: int | None
    steps: int | None
    best_val: float | None  # nats per token
    bpc: float | None
    tokens_per_s: float | None
    state: str  # finished, interrupted, diverged, running, stopped
    resumable: bool
    detail: str  # the stop reason, the step of divergence, ...
    bpc_per_nat: float | None  # val bits/char per val nat/token, where known
    points: list[Point] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "corpus": self.corpus,
            "level": self.level,
            "arch": self.arch,
            "params": self.params,
            "steps": self.steps,
            "val_loss": self.best_val,  # as `train --json` and `bakeoff --json` name it
            "val_bpc": self.bpc,
            "train_tokens_per_s": self.tokens_per_s,
            "best_val_loss": self.best_val,  # older names, kept for existing readers
            "tokens_per_s": self.tokens_per_s,
            "state": self.state,
            "resumable": self.resumable,
            "detail": self.detail,
            "notes": self.notes,
        }


@dataclass
class Bakeoff:
    path: Path
    name: str
    runs: list[Run]  # the leaderboard: best first

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "leaderboard": [run.to_json() for run in self.runs],
        }


@dataclass
class Listing:
    runs: list[Run] = field(default_factory=list)
    bakeoffs: list[Bakeoff] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [run.to_json() for run in self.runs],
            "bakeoffs": [b.to_json() for b in self.bakeoffs],
            "skipped": [{"path": str(p), "reason": why} for p, why in self.skipped],
        }


class NotARun(Exception):
    """The folder is not a run folder; the message says why."""


def read_json_bounded(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON file of at most `limit` bytes; NotARun if it is missing, too big or not JSON."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise NotARun(f"no {path.name}") from None
    except OSError as exc:
        raise NotARun(f"cannot read {path.name}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise NotARun(f"{path.name} is over {limit // 2**20} MB")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise NotARun(f"{path.name} is not JSON") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def read_points(path: Path, tokens_per_step: float | None) -> tuple[list[Point], list[str]]:
    """The validation records of metrics.jsonl (old and new keys), and notes on lines skipped."""
    points: list[Point] = []
    notes: list[str] = []
    bad = 0
    if not path.exists():
        return points, notes
    try:
        with open(path, "rb") as handle:
            read = 0
            for count, raw in enumerate(handle):
                read += len(raw)
                if read > MAX_METRICS_BYTES or count >= MAX_METRICS_LINES:
                    notes.append("metrics.jsonl is longer than the bound; its first part is shown")
                    break
                point = _point(raw, tokens_per_step)
                if point is None:
                    bad += 1  # a line cut short by a crash, or not a record
                else:
                    points.append(point)
    except OSError as exc:
        notes.append(f"cannot read metrics.jsonl: {exc.strerror or exc}")
    if bad:
        notes.append(f"{bad} line{'s' if bad > 1 else ''} of metrics.jsonl could not be read")
    return points, notes


def _point(raw: bytes, tokens_per_step: float | None) -> Point | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict) or _int(record.get("step")) is None:
        return None
    step = int(record["step"])
    tokens = _number(record.get("tokens"))
    if tokens is None and tokens_per_step is not None:
        tokens = step * tokens_per_step
    sample = record.get("sample")
    return Point(
        step=step,
        seconds=_number(record.get("seconds")),
        tokens=tokens,
        train_loss=_number(record.get("train_loss")),
        val_loss=_number(record.get("val_loss")),
        sample=sample if isinstance(sample, str) else "",
    )


def safetensors_params(path: Path) -> int | None:
    """The number of parameters in a safetensors file, from its header alone."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return None
            (size,) = struct.unpack("<Q", head)
            if size > MAX_HEADER_BYTES:
                return None
            header = json.loads(handle.read(size))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    total = 0
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
            return None
        total += math.prod(shape)
    return total


def _tokens_per_step(config: dict[str, Any]) -> float | None:
    """Targets per optimizer step, for records written before they carried `tokens`."""
    model, train = config.get("model"), config.get("train")
    if not isinstance(model, dict) or not isinstance(train, dict):
        return None
    batch, context = _int(train.get("batch_size")), _int(model.get("context"))
    if batch is None:
        return None
    if not model.get("bidirectional") and train.get("recipe", "stream") == "stream" and context:
        return float(batch * context)
    return float(batch)


def _last_write(folder: Path) -> float:
    newest = 0.0
    for name in ("metrics.jsonl", "trainer.json", "last.safetensors", "config.json"):
        try:
            newest = max(newest, (folder / name).stat().st_mtime)
        except OSError:
            continue
    return newest


def _newer(folder: Path, name: str, other: str) -> bool:
    """Whether marker `name` was written after marker `other` (or `other` is absent)."""
    try:
        mine = (folder / name).stat().st_mtime_ns
    except OSError:
        return False
    try:
        return mine >= (folder / other).stat().st_mtime_ns
    except OSError:
        return True


def is_run(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def read_run(folder: Path, name: str | None = None) -> Run:
    """The run in `folder`; NotARun if it is not one."""
    if not folder.is_dir():
        raise NotARun("not a folder")
    config = read_json_bounded(folder / "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise NotARun("config.json is not a run's config")
    model: dict[str, Any] = config["model"]
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    corpus = config.get("corpus") if isinstance(config.get("corpus"), dict) else {}
    assert isinstance(train, dict) and isinstance(corpus, dict)
    notes: list[str] = []
    points, point_notes = read_points(folder / "metrics.jsonl", _tokens_per_step(config))
    notes.extend(point_notes)

    result = _optional_json(folder / "result.json", notes)
    trainer = _optional_json(folder / "trainer.json", notes)
    interrupted = _optional_json(folder / "interrupted.json", notes)
    diverged = _optional_json(folder / "diverged.json", notes)
    state_record = trainer.get("state") if isinstance(trainer, dict) else None
    state_record = state_record if isinstance(state_record, dict) else {}

    level = str(train.get("level") or model.get("level") or "-")
    vals = [p.val_loss for p in points if p.val_loss is not None]
    resumable = (folder / "trainer.json").is_file() and (folder / "last.safetensors").is_file()
    detail = ""
    if isinstance(result, dict):
        state, resumable = "finished", False
        detail = str(result.get("stop_reason") or "")
    elif isinstance(diverged, dict) and _newer(folder, "diverged.json", "interrupted.json"):
        state = "diverged"
        detail = f"at step {_int(diverged.get('step'))}"
    elif isinstance(interrupted, dict):
        state = "interrupted"
        detail = f"at step {_int(interrupted.get('step'))}"
    elif time.time() - _last_write(folder) < RUNNING_SECONDS:
        state = "running"
    else:
        state = "stopped"
        detail = "no end marker: killed, or stopped by an error"
    result = result if isinstance(result, dict) else {}

    best_val = _number(result.get("val_loss"))
    if best_val is None:
        best_val = _number(state_record.get("best_val")) or (min(vals) if vals else None)
    bpc = _number(result.get("val_bpc"))
    bpc_per_nat: float | None = None
    if bpc is not None and best_val:
        bpc_per_nat = bpc / best_val
    elif level == "char":  # one token per character
        bpc_per_nat = 1.0 / LN2
    if bpc is None and bpc_per_nat is not None and best_val is not None:
        bpc = best_val * bpc_per_nat
    steps = _int(result.get("steps"))
    if steps is None:
        steps = _int(state_record.get("step"))
    if steps is None and isinstance(diverged, dict):
        steps = _int(diverged.get("step"))
    if steps is None and points:
        steps = points[-1].step
    tokens_per_s = _number(result.get("train_tokens_per_s"))
    if tokens_per_s is None:
        seen, elapsed = (
            _number(state_record.get("tokens_seen")),
            _number(state_record.get("elapsed")),
        )
        if seen and elapsed:
            tokens_per_s = seen / elapsed
    params = _int(result.get("params"))
    if params is None:
        for weights in ("best.safetensors", "last.safetensors"):
            params = safetensors_params(folder / weights)
            if params is not None:
                break
    arch = str(model.get("arch") or "-") + ("-bi" if model.get("bidirectional") else "")
    return Run(
        path=folder,
        name=name or folder.name,
        corpus=str(corpus.get("name") or train.get("corpus") or "-"),
        level=level,
        arch=arch,
        params=params,
        steps=steps,
        best_val=best_val,
        bpc=bpc,
        tokens_per_s=tokens_per_s,
        state=state,
        resumable=resumable and state != "finished",
        detail=detail,
        bpc_per_nat=bpc_per_nat,
        points=points,
        notes=notes,
    )


def _optional_json(path: Path, notes: list[str]) -> Any:
    if not path.exists():
        return None
    try:
        return read_json_bounded(path)
    except NotARun as exc:
        notes.append(str(exc))
        return None


def _rank(run: Run) -> tuple[int, float]:
    figure = run.bpc if run.bpc is not None else run.best_val
    return (0 if figure is not None else 1, figure if figure is not None else 0.0)


def subfolders(folder: Path) -> list[Path]:
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []
    return children[:MAX_ENTRIES]


def read_bakeoff(folder: Path, name: str | None = None) -> Bakeoff | None:
    """A folder whose subfolders are runs (or that holds a bakeoff.json); None if it is not one."""
    runs: list[Run] = []
    for child in subfolders(folder):
        if is_run(child):
            try:
                runs.append(read_run(child))
            except NotARun:
                continue
    if not runs and not (folder / "bakeoff.json").is_file():
        return None
    runs.sort(key=_rank)
    return Bakeoff(path=folder, name=name or folder.name, runs=runs)


def list_runs(folder: Path) -> Listing:
    """Every run and bake-off in `folder` (or `folder` itself if it is one); the rest skipped."""
    listing = Listing()
    if is_run(folder):
        _add_run(listing, folder, folder.name)
        return listing
    if (folder / "bakeoff.json").is_file():
        bakeoff = read_bakeoff(folder)
        if bakeoff is not None:
            listing.bakeoffs.append(bakeoff)
            return listing
    for child in subfolders(folder):
        if is_run(child):
            _add_run(listing, child, child.name)
            continue
        bakeoff = read_bakeoff(child)
        if bakeoff is not None:
            listing.bakeoffs.append(bakeoff)
            continue
        inner = [read_bakeoff(g, f"{child.name}/{g.name}") for g in subfolders(child)]
        found = [b for b in inner if b is not None]
        if found:
            listing.bakeoffs.extend(found)
        else:
            listing.skipped.append((child, "not a run folder (no config.json)"))
    return listing


def _add_run(listing: Listing, folder: Path, name: str) -> None:
    try:
        listing.runs.append(read_run(folder, name))
    except NotARun as exc:
        listing.skipped.append((folder, str(exc)))
