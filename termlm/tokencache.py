"""Where token files and fitted tokenizers are kept: the user's cache folder, or TERMLM_CACHE_DIR.

Layout: ``tokens/KEY/`` (a token file: ``train.bin``, ``val.bin``, ``meta.json``),
``tokenizers/KEY.json`` (a tokenizer fitted on a corpus) and ``corpora.json`` (scans of corpus
files, by path and file identity). Everything here can be deleted: it is made again when needed.
Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_ENV = "TERMLM_CACHE_DIR"
TOKENS = "tokens"
TOKENIZERS = "tokenizers"
BUILDING = ".building-"  # a token file being written: .building-KEY-PID


def cache_dir() -> Path:
    """TERMLM_CACHE_DIR, else the platform's user cache folder + termlm."""
    given = os.environ.get(CACHE_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "termlm"
    if os.name == "nt":
        local = os.environ.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / "termlm" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else home / ".cache") / "termlm"


def tokens_dir() -> Path:
    return cache_dir() / TOKENS


def tokenizers_dir() -> Path:
    return cache_dir() / TOKENIZERS


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 if it is not there)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


def pid_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine (a build in progress)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def building_pid(name: str) -> int:
    """The process id in a ``.building-KEY-PID`` folder name (0 if there is none)."""
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def remove_stale_builds(folder: Path) -> None:
    """Half-written token files of processes that are gone (killed, or the machine stopped)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name.startswith(BUILDING) and not pid_alive(building_pid(entry.name)):
            shutil.rmtree(entry, ignore_errors=True)


@dataclass(frozen=True)
class CacheEntry:
    """One token file in the cache, as `termlm cache` lists it."""

    key: str
    corpus: str
    level: str
    split: str
    tokens: int
    bytes: int
    used: float  # when it was last read (seconds since the epoch)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "corpus": self.corpus,
            "level": self.level,
            "split": self.split,
            "tokens": self.tokens,
            "bytes": self.bytes,
            "used": self.used,
        }


def list_entries() -> list[CacheEntry]:
    """The complete token files, most recently used first."""
    folder = tokens_dir()
    entries: list[CacheEntry] = []
    if not folder.is_dir():
        return entries
    for entry in folder.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
            used = (entry / "meta.json").stat().st_mtime
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict):
            continue
        split = meta.get("split") or {}
        entries.append(
            CacheEntry(
                key=entry.name,
                corpus=str(meta.get("corpus_name", "?")),
                level=str(meta.get("level", "?")),
                split=f"{split.get('kind', '?')} {split.get('fraction', 0):g}",
                tokens=int(meta.get("train_tokens", 0)) + int(meta.get("val_tokens", 0)),
                bytes=folder_bytes(entry),
                used=used,
            )
        )
    entries.sort(key=lambda e: e.used, reverse=True)
    return entries


def total_bytes() -> int:
    return folder_bytes(cache_dir())


def clear() -> tuple[int, int]:
    """Delete every token file, fitted tokenizer and remembered scan; returns (files, bytes).

    A token file being written by a running process is left to it.
    """
    root = cache_dir()
    removed_files = 0
    removed_bytes = 0
    for name in (TOKENS, TOKENIZERS):
        folder = root / name
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.startswith(BUILDING) and pid_alive(building_pid(entry.name)):
                continue
            size = folder_bytes(entry)
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            if not entry.exists():
                removed_files += 1
                removed_bytes += size
    memo = root / "corpora.json"
    if memo.exists():
        size = memo.stat().st_size
        with contextlib.suppress(OSError):
            memo.unlink()
            removed_bytes += size
    return removed_files, removed_bytes
