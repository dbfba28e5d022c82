"""What the chat's Train view asks for, as `termlm train` (or `termlm bakeoff`) command lines.

Torch-free and Textual-free: the checks a person can act on before any process starts (the
train extra installed, the text file readable, the runs folder writable), and the commands
that train, resume and export, each as an argument list.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path

from termlm.errors import ConfigError, CorpusError, RunError, TermlmError

LEVELS = ("char", "word", "bpe")
ARCHS = ("lstm", "gru", "rnn", "attention", "transformer")
BAKEOFF = "bake-off"
BAKEOFF_ARCHS = ("rnn", "lstm", "gru", "attention", "transformer")
TRAIN_MODULES = ("torch", "onnx", "safetensors")
INSTALL_TRAIN = "pip install 'termlm[train]'"
MAX_MINUTES = 24 * 60.0


class TrainExtraMissing(TermlmError):
    """The chat runs on the plain install: training needs PyTorch."""


def missing_train_modules() -> list[str]:
    """The modules of the train extra that this Python cannot import (none: training works)."""
    missing = []
    for name in TRAIN_MODULES:
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def check_train_extra() -> None:
    missing = missing_train_modules()
    if missing:
        raise TrainExtraMissing(
            f"training needs the train extra ({', '.join(missing)} not installed)",
            f"install it with: {INSTALL_TRAIN}",
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "corpus"


@dataclass
class TrainRequest:
    """One training asked for in the Train view."""

    corpus: str
    level: str = "char"
    arch: str = "lstm"  # or BAKEOFF
    minutes: float = 2.0
    out: str = "runs"
    name: str | None = None
    extra: list[str] = field(default_factory=list)  # more `termlm train` options, as given
    python: str = sys.executable

    def __post_init__(self) -> None:
        if self.name is None:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            arch = "bakeoff" if self.bakeoff else self.arch
            self.name = f"{_slug(Path(self.corpus).stem)}-{self.level}-{arch}-{stamp}"

    @property
    def bakeoff(self) -> bool:
        return self.arch == BAKEOFF

    @property
    def folder(self) -> Path:
        """The run folder (a bake-off: the folder of its runs)."""
        assert self.name is not None
        base = Path(self.out) / "bakeoff" if self.bakeoff else Path(self.out)
        return base / self.name

    def check(self) -> None:
        """Refuse what cannot work, before a process starts: each with what to do."""
        if self.level not in LEVELS:
            raise ConfigError(f"unknown level {self.level!r}", f"pick one of {', '.join(LEVELS)}")
        if self.arch not in (*ARCHS, BAKEOFF):
            raise ConfigError(
                f"unknown architecture {self.arch!r}", f"pick one of {', '.join(ARCHS)}, bake-off"
            )
        if not (0 < self.minutes <= MAX_MINUTES):
            raise ConfigError(
                f"the budget must be more than 0 and at most {MAX_MINUTES:g} minutes",
                "for example 2",
            )
        check_train_extra()
        path = Path(self.corpus).expanduser()
        if not self.corpus.strip():
            raise CorpusError("no text file given", "type the path of a text file to train on")
        if not path.exists():
            raise CorpusError(f"no file at {path}", "check the path (Tab completes it)")
        if not path.is_file():
            raise CorpusError(f"{path} is not a file", "pick a text file, not a folder")
        if not os.access(path, os.R_OK):
            raise CorpusError(f"cannot read {path}", "check its permissions")
        check_writable(self.folder.parent)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise RunError(f"{self.folder} already exists", "start again: a new name is chosen")

    def command(self) -> list[str]:
        """The training process: its events on stdout, no progress bar."""
        corpus = str(Path(self.corpus).expanduser())
        head = [self.python, "-m", "termlm"]
        if self.bakeoff:
            per_arch = self.minutes / len(BAKEOFF_ARCHS)
            return [
                *head,
                "bakeoff",
                corpus,
                "--level",
                self.level,
                "--archs",
                ",".join(BAKEOFF_ARCHS),
                "--minutes",
                f"{per_arch:g}",
                "--out",
                str(self.folder.parent),
                "--name",
                str(self.name),
                "--events",
                *self.extra,
            ]
        return [
            *head,
            "train",
            corpus,
            "--level",
            self.level,
            "--arch",
            self.arch,
            "--minutes",
            f"{self.minutes:g}",
            "--out",
            self.out,
            "--name",
            str(self.name),
            "--events",
            "--quiet",
            "--no-plot",
            *self.extra,
        ]

    def resume_command(self) -> str:
        """What continues a stopped run, as a person types it."""
        if self.bakeoff:
            return f"termlm bakeoff --resume {self.folder}"
        return f"termlm train --resume {self.folder}"


def export_command(python: str, run_dir: Path, out: Path) -> list[str]:
    return [python, "-m", "termlm", "export", str(run_dir), "--out", str(out), "--json"]


def check_writable(folder: Path) -> None:
    """The runs folder exists (or can be made) and takes files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(
            f"cannot make the runs folder {folder}: {exc.strerror or exc}",
            "start the chat in a folder you can write to",
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunError(
            f"cannot write in the runs folder {folder}",
            "start the chat in a folder you can write to",
        )
