"""Everything a termlm decoding plugin needs, in one module.

    from termlm.plugin_api import OptionSpec, StepInfo, hookimpl

A plugin module implements one hook, ``register_plugins(register)``, decorated with
``hookimpl``, and registers its classes: strategies (``Strategy``: ``run(ctx)`` yields
``Choice`` items) and logits processors (``Processor``: ``process(logits, history, info)``
returns new scores). Each class has a ``name``, a one-line ``description`` and ``options`` (a
tuple of ``OptionSpec``), and is built once per generation with its option values as keyword
arguments. The tutorial is docs/plugins.md.

To try a plugin in Python: ``load_model`` opens a model file (or a name from
`termlm models`) and its ``tokenizer``; ``build_plugin_manager`` loads the plugins;
``generate`` runs them and yields events (``TokenEvent``, ``BeamsEvent``, then one
``DoneEvent``). To test one without a trained model: ``char_tokenizer``, ``PieceTokenizer``
and the toy models ``BigramModel``, ``TinyRNN``, ``MemoryModel`` and ``WindowModel``.

Compatibility: ``API_VERSION`` is ``(major, minor)``. Within a major version every name listed
in ``__all__`` keeps its meaning and its signature (fields and keyword arguments may be added,
with defaults); a minor version adds names or fields. Removing or changing a name, or changing
what a hook receives, raises the major version. Anything imported from elsewhere in termlm
(``termlm.decoding.*``, ``termlm.runtime.*``) may change in any release.
A plugin checks the version it was written for at import::

    from termlm.plugin_api import API_VERSION

    if API_VERSION[0] != 1 or API_VERSION < (1, 0):
        raise ImportError("this plugin needs termlm's plugin API 1.0 or a later 1.x")

`termlm plugins` lists a plugin whose import raises as not loaded, with the reason.
"""

from __future__ import annotations

from pathlib import Path

from termlm.decoding.contracts import (
    BeamsUpdate,
    Choice,
    DecodeContext,
    Hypothesis,
    NBest,
    Processor,
    StepInfo,
    Strategy,
    TokenizerLike,
    Tracker,
    log_softmax,
)
from termlm.decoding.events import (
    Alternative,
    Beam,
    BeamsEvent,
    DoneEvent,
    GenerationResult,
    TokenEvent,
)
from termlm.decoding.hookspecs import hookimpl
from termlm.decoding.loop import generate
from termlm.decoding.options import OptionSpec
from termlm.decoding.registry import PluginRegistry, build_plugin_manager
from termlm.decoding.sampling import (
    UniformSource,
    apply_temperature,
    draw,
    min_p_filter,
    top_k_filter,
    top_p_filter,
    typical_filter,
    warp,
)
from termlm.decoding.session import Session
from termlm.decoding.testing import (
    BigramModel,
    MemoryModel,
    PieceTokenizer,
    TinyRNN,
    WindowModel,
    char_tokenizer,
)
from termlm.errors import PluginError
from termlm.runtime.onnx_model import OnnxLanguageModel

API_VERSION: tuple[int, int] = (1, 1)  # 1.1: DecodeContext.logit_bans, UniformSource
"""The plugin API's version, ``(major, minor)``: see the module's compatibility promise."""


def load_model(
    name_or_path: str | Path | None = None, *, threads: int | None = None
) -> OnnxLanguageModel:
    """Open a model for ``generate``: a name from `termlm models`, an ``.onnx`` path, or None
    for the default model. Its tokenizer is ``model.tokenizer``::

        model = load_model("shakespeare-char")
        events = generate(model, model.tokenizer, "ROMEO:", registry=build_plugin_manager())

    ``threads``: onnxruntime's threads (default: by the model's size). ``ModelFileError`` (a
    ``TermlmError``) names what is wrong with a file termlm cannot use.
    """
    from termlm.runtime.onnx_model import load_model as open_model
    from termlm.runtime.registry import resolve_model

    path = resolve_model(None if name_or_path is None else str(name_or_path))
    return open_model(path, threads=threads)


__all__ = [
    "API_VERSION",
    "Alternative",
    "Beam",
    "BeamsEvent",
    "BeamsUpdate",
    "BigramModel",
    "Choice",
    "DecodeContext",
    "DoneEvent",
    "GenerationResult",
    "Hypothesis",
    "MemoryModel",
    "NBest",
    "OnnxLanguageModel",
    "OptionSpec",
    "PieceTokenizer",
    "PluginError",
    "PluginRegistry",
    "Processor",
    "Session",
    "StepInfo",
    "Strategy",
    "TinyRNN",
    "TokenEvent",
    "TokenizerLike",
    "Tracker",
    "UniformSource",
    "WindowModel",
    "apply_temperature",
    "build_plugin_manager",
    "char_tokenizer",
    "draw",
    "generate",
    "hookimpl",
    "load_model",
    "log_softmax",
    "min_p_filter",
    "top_k_filter",
    "top_p_filter",
    "typical_filter",
    "warp",
]
