"""PyTorch model -> ONNX graph bytes, with the names and dynamic axes of docs/model-format.md."""

from __future__ import annotations

import io
import warnings

import torch
from torch import Tensor, nn

from termlm.training.models import LanguageModel

OPSET = 17
EXAMPLE_BATCH = 2
EXAMPLE_TIME = 3
EXAMPLE_PAST = 4


class StepGraph(nn.Module):
    """Flattens the model's interface for export: (tokens, *state) -> (logits, *state, *extras)."""

    def __init__(self, model: LanguageModel) -> None:
        super().__init__()
        self.model = model
        self.extras = model.extras_names()

    def forward(self, tokens: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, new_state, extras = self.model.forward_with_extras(tokens, tuple(state) or None)
        return (logits, *new_state, *(extras[name] for name in self.extras))


def input_names(model: LanguageModel) -> list[str]:
    return ["tokens"] + [f"state_{spec.name}" for spec in model.state_spec()]


def output_names(model: LanguageModel) -> list[str]:
    states = [f"new_{spec.name}" for spec in model.state_spec()]
    return ["logits", *states, *model.extras_names()]


def dynamic_axes(model: LanguageModel) -> dict[str, dict[int, str]]:
    """Symbolic axes: batch and time of the tokens; batch (and memory length) of each state."""
    axes: dict[str, dict[int, str]] = {"tokens": {0: "batch", 1: "time"}}
    axes["logits"] = {0: "batch", 1: "time"} if model.stateful else {0: "batch"}
    for spec in model.state_spec():
        for prefix, past in (("state_", "past"), ("new_", "total")):
            entry = {spec.batch_axis: "batch"}
            if spec.time_axis is not None:
                entry[spec.time_axis] = past
            axes[prefix + spec.name] = entry
    for name in model.extras_names():
        axes[name] = {0: "batch", 1: "time"}
        if name == "attention":
            axes[name][2] = "total"
    return axes


def example_inputs(model: LanguageModel) -> tuple[Tensor, ...]:
    """Batch 2, time 3 and a non-empty past, so no axis is specialised to 0 or 1."""
    config = model.config
    time = config.context if not model.stateful else EXAMPLE_TIME
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, config.vocab_size, (EXAMPLE_BATCH, time), generator=generator)
    states = []
    for spec in model.state_spec():
        shape = [
            EXAMPLE_BATCH if d == "batch" else EXAMPLE_PAST if d == "time" else int(d)
            for d in spec.shape
        ]
        states.append(torch.randn(shape, generator=generator) * 0.5)
    return (tokens, *states)


def to_onnx_bytes(model: LanguageModel) -> bytes:
    """Export with the TorchScript exporter: nn.RNN/LSTM/GRU become native ONNX recurrent ops
    with fully dynamic axes (the dynamo exporter fixes some axes to their example sizes)."""
    was_training = model.training
    wrapper = StepGraph(model).eval()  # the exporter restores the wrapper's mode afterwards
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            example_inputs(model),
            buffer,  # type: ignore[arg-type]
            input_names=input_names(model),
            output_names=output_names(model),
            dynamic_axes=dynamic_axes(model),  # type: ignore[arg-type]
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model.train(was_training)
    return buffer.getvalue()
