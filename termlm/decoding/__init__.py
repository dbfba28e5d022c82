"""Decoding: the plugin contract, the plugin manager, and the generation loop.

    registry = build_plugin_manager()
    for event in generate(model, tokenizer, "Once", registry=registry, strategy="beam",
                          options={"num_beams": 4}):
        ...

Plugin modules implement one hook with ``hookimpl`` (see docs/plugins.md).
"""

from termlm.decoding.contracts import (
    BeamsUpdate,
    Choice,
    DecodeContext,
    Hypothesis,
    NBest,
    Processor,
    StepInfo,
    Strategy,
)
from termlm.decoding.hookspecs import hookimpl
from termlm.decoding.loop import ProcessorChain, generate
from termlm.decoding.options import OptionSpec
from termlm.decoding.registry import (
    PluginInfo,
    PluginRegistry,
    build_plugin_manager,
    validate_options,
)
from termlm.decoding.session import Session

__all__ = [
    "BeamsUpdate",
    "Choice",
    "DecodeContext",
    "Hypothesis",
    "NBest",
    "OptionSpec",
    "PluginInfo",
    "PluginRegistry",
    "Processor",
    "ProcessorChain",
    "Session",
    "StepInfo",
    "Strategy",
    "build_plugin_manager",
    "generate",
    "hookimpl",
    "validate_options",
]
