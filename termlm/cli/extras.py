"""Commands that need the train extra (PyTorch, onnx, safetensors), and the one line that says so.

The plain install (`pip install termlm`) has no torch. `termlm train`, `bakeoff` and `export`
then stop before their first heavy import with one line naming the command that installs what
they need, instead of a traceback.
"""

from __future__ import annotations

import importlib.util

INSTALL = "pip install 'termlm[train]'"
# A rich help panel's title is markup: "\\[" keeps the brackets of the extra's name.
PANEL = "Training (needs the train extra: pip install 'termlm\\[train]')"
PLAIN_PANEL = "Commands (no PyTorch needed)"

NEEDS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "safetensors"),
    "bakeoff": ("torch", "safetensors"),
    "export": ("torch", "onnx", "safetensors"),
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-removed module
        return False


def missing(command: str) -> list[str]:
    """The modules of the train extra that ``command`` needs and this install lacks."""
    return [module for module in NEEDS.get(command, ()) if not installed(module)]


def require(command: str) -> None:
    """Raise a one-line TermlmError when ``command`` cannot run in this install."""
    lacking = missing(command)
    if lacking:
        from termlm.errors import ConfigError

        raise ConfigError(
            f"termlm {command} needs the train extra ({', '.join(lacking)} not installed): "
            f"{INSTALL}"
        )
