"""Opening a model file safely: a regular file of a sane size, checked before and after it is
opened, read whole only then (a pipe, a device or a link loop never blocks or streams forever)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from termlm.errors import ModelFileError
from termlm.units import file_size

REEXPORT = "re-export it from its run folder with `termlm export RUN_DIR`"
MAX_MODEL_BYTES = 2**30  # a termlm model is megabytes; protobuf itself stops at 2 GiB


def _check_stat(path: Path, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ModelFileError(
            f"{str(path)!r} is a folder, not a model file",
            "give the .onnx file inside it; a training run folder becomes one with `termlm export`",
        )
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(
            f"{str(path)!r} is not a regular file (a pipe, a device or a socket); termlm reads "
            "model files only from regular files",
            "give the path of an exported .onnx file",
        )
    if info.st_size == 0:
        raise ModelFileError(f"model file {str(path)!r} is empty (0 bytes)", REEXPORT)
    if info.st_size > MAX_MODEL_BYTES:
        raise ModelFileError(
            f"model file {str(path)!r} is {file_size(info.st_size)}, over the "
            f"{MAX_MODEL_BYTES // 2**30} GB a termlm model file may be; it was not read",
            "the file is not a termlm model, or is damaged; " + REEXPORT,
        )


def check_model_path(path: str | Path) -> Path:
    """The path, if it names a regular file of a sane size; a ModelFileError otherwise.

    Never opens the file, so a pipe or a device cannot block or stream forever.
    """
    path = Path(path).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelFileError(
            f"model file {str(path)!r} does not exist",
            "give a path to an exported .onnx file or a model name from `termlm models`",
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelFileError(
                f"{str(path)!r} is a symbolic link that loops (it never reaches a file)",
                "fix or remove the link, and give the path of an exported .onnx file",
            ) from None
        raise ModelFileError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    _check_stat(path, info)
    return path


def open_model_file(path: Path) -> int:
    """An open descriptor of a checked model file (it is checked again once open: no race)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ModelFileError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        _check_stat(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_model_bytes(path: str | Path) -> bytes:
    """The whole of a model file, read only once it is known to be a regular file of a sane size."""
    path = check_model_path(path)
    fd = open_model_file(path)
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise ModelFileError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_MODEL_BYTES:  # it grew after the check
        raise ModelFileError(
            f"model file {str(path)!r} is over the {MAX_MODEL_BYTES // 2**30} GB a termlm model "
            "file may be",
            REEXPORT,
        )
    return data
