"""Where models live, and which one a name means.

Searched in order (the first file of a given name wins):

1. ``$TERMLM_MODELS_DIR``
2. the user's data folder: ``platformdirs.user_data_dir("termlm")/models``
3. ``./exported`` in the current directory
4. the models bundled with termlm (``termlm/bundled`` or ``termlm/exported`` when installed, else
   the repository's top-level ``exported/`` next to the package)

Listing reads only each file's metadata (a protobuf walk over a memory map), never a session.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from termlm.errors import ModelFileError
from termlm.modelfile import ModelMeta, read_model_summary, summary_to_meta

ENV_DIR = "TERMLM_MODELS_DIR"
DEFAULT_NAME = "shakespeare-char"


@dataclass(frozen=True)
class ModelEntry:
    name: str  # the file stem: what `termlm generate NAME` takes
    path: Path
    arch: str | None
    level: str | None
    val_loss: float | None
    params: int | None
    size: int  # bytes on disk
    is_default: bool
    source: str  # "env" | "user" | "cwd" | "bundled"
    error: str | None = None  # why the file cannot be used, if it cannot
    init_from: dict[str, str] | None = None  # the model it was fine-tuned from: name, sha256
    card: dict[str, object] | None = None  # the model card (training provenance and figures)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "arch": self.arch,
            "level": self.level,
            "val_loss": self.val_loss,
            "params": self.params,
            "size_bytes": self.size,
            "default": self.is_default,
            "source": self.source,
            "error": self.error,
            "init_from": self.init_from,
            "card": self.card,
        }


def bundled_dirs() -> list[Path]:
    import termlm

    package = Path(termlm.__file__).resolve().parent
    return [package / "bundled", package / "exported", package.parent / "exported"]


def search_dirs() -> list[tuple[str, Path]]:
    """(source, folder) in search order; folders that do not exist are left in (and skipped)."""
    dirs: list[tuple[str, Path]] = []
    env = os.environ.get(ENV_DIR)
    if env:
        dirs.extend(("env", Path(part).expanduser()) for part in env.split(os.pathsep) if part)
    from platformdirs import user_data_dir

    dirs.append(("user", Path(user_data_dir("termlm")) / "models"))
    dirs.append(("cwd", Path.cwd() / "exported"))
    dirs.extend(("bundled", path) for path in bundled_dirs())
    return dirs


def _unusable(path: Path, source: str, size: int, reason: str) -> ModelEntry:
    return ModelEntry(path.stem, path, None, None, None, None, size, False, source, reason)


def _entry(path: Path, source: str) -> tuple[ModelEntry, ModelMeta | None]:
    try:
        size = path.stat().st_size
    except OSError as exc:  # a symbolic link loop, a link to nowhere, no permission
        why = "a symbolic link that loops" if exc.errno == errno.ELOOP else exc.strerror or exc
        return _unusable(path, source, 0, f"cannot be read ({why})"), None
    try:
        meta = summary_to_meta(read_model_summary(path, scan_graph=False))
    except ModelFileError as exc:
        return _unusable(path, source, size, exc.message), None
    entry = ModelEntry(
        name=path.stem,
        path=path,
        arch=meta.arch + ("-bi" if meta.config.bidirectional else ""),
        level=meta.level,
        val_loss=_own_val_loss(meta),
        params=meta.params,
        size=size,
        is_default=False,
        source=source,
        init_from=lineage_of(meta.card),
        card=meta.card,
    )
    return entry, meta


def _own_val_loss(meta: ModelMeta) -> float | None:
    """The file's own validation loss: a quantized file's card holds its own figure only when
    export measured it (then the float model's is kept as ``val_loss_float``)."""
    if meta.quantized and "val_loss_float" not in meta.card:
        return None
    return meta.val_loss


def lineage_of(card: dict[str, object]) -> dict[str, str] | None:
    """The name and sha256 of the model a file was fine-tuned from, as its card records them."""
    parent = card.get("init_from")
    if not isinstance(parent, dict):
        return None
    name, sha = parent.get("name"), parent.get("sha256")
    if not isinstance(name, str) or not isinstance(sha, str):
        return None
    return {"name": name, "sha256": sha}


def _pick_default(entries: list[ModelEntry], metas: list[ModelMeta | None]) -> int | None:
    usable = [i for i, entry in enumerate(entries) if entry.error is None]
    if not usable:
        return None
    bundled = [i for i in usable if entries[i].source == "bundled"]
    for candidates in (bundled, usable):
        for i in candidates:
            meta = metas[i]
            if meta is not None and meta.is_default:
                return i
        for i in candidates:
            if entries[i].name == DEFAULT_NAME:
                return i
        if candidates:
            return candidates[0]
    return None


def find_models(dirs: Iterable[tuple[str, Path]] | None = None) -> list[ModelEntry]:
    """Every .onnx file in the search folders, first of each name, the default one marked."""
    entries: list[ModelEntry] = []
    metas: list[ModelMeta | None] = []
    seen_paths: set[Path] = set()
    seen_names: set[str] = set()
    for source, folder in search_dirs() if dirs is None else dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.onnx")):
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):  # a loop or a dangling link: listed as unusable
                real = path.absolute()
            if real in seen_paths or path.stem in seen_names or path.is_dir():
                continue
            seen_paths.add(real)
            seen_names.add(path.stem)
            entry, meta = _entry(path, source)
            entries.append(entry)
            metas.append(meta)
    default = _pick_default(entries, metas)
    if default is not None:
        chosen = entries[default]
        entries[default] = replace(chosen, is_default=True)
    return entries


def _looks_like_path(text: str) -> bool:
    return text.endswith(".onnx") or os.sep in text or "/" in text or text.startswith((".", "~"))


def check_default_model(entries: list[ModelEntry] | None = None) -> None:
    """Refuse a broken file of the default model's name: it hides the bundled one, and taking
    another model in its place without a word would answer with a model nobody asked for."""
    for entry in find_models() if entries is None else entries:
        if entry.name == DEFAULT_NAME and entry.error is not None:
            raise ModelFileError(
                f"the default model {DEFAULT_NAME!r} ({entry.path}): {entry.error}",
                "fix or remove that file, or name another model (`termlm models` lists them)",
            )


def resolve_model(name_or_path: str | None, entries: list[ModelEntry] | None = None) -> Path:
    """A model file: a path as given, a name from `termlm models`, or (None) the default model."""
    if name_or_path is not None and _looks_like_path(name_or_path):
        return Path(name_or_path).expanduser()
    if name_or_path is not None and Path(name_or_path).is_file():
        return Path(name_or_path)
    found = find_models() if entries is None else entries
    usable = [entry for entry in found if entry.error is None]
    if name_or_path is None:
        check_default_model(found)
        for entry in usable:
            if entry.is_default:
                return entry.path
        raise ModelFileError(
            "no model found: termlm has no bundled model and none in the search folders",
            f"give a model file path, put .onnx files in ${ENV_DIR} or ./exported, "
            "or train and export one: termlm train CORPUS && termlm export RUN_DIR",
        )
    for entry in found:
        if entry.name == name_or_path:
            if entry.error is not None:
                raise ModelFileError(f"model {name_or_path!r} ({entry.path}): {entry.error}")
            return entry.path
    names = ", ".join(entry.name for entry in usable) or "none"
    raise ModelFileError(
        f"no model named {name_or_path!r}; available: {names}",
        "run `termlm models` to see them all, or give a path to an .onnx file",
    )
