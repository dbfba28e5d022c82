"""Checks an exported graph must pass before it is written: symbolic axes, and agreement
between onnxruntime and PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from termlm.errors import ModelFileError
from termlm.training.models import LanguageModel

TOLERANCE = 1e-4
PARITY_SHAPES = ((1, 1), (1, 64), (4, 1), (4, 17))  # (batch, time)
STEPS = 32
RANDOM_PAST = 5

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class CheckResult:
    name: str
    max_diff: float  # the largest absolute difference seen (0 for structural checks)


class ExportCheckFailed(ModelFileError):
    """The exported graph does not behave like the PyTorch model; nothing was written."""


def _fail(check: str, detail: str) -> ExportCheckFailed:
    return ExportCheckFailed(
        f"export check {check!r} failed: {detail}; nothing was written",
        "this is a bug in termlm's export: please report it with the run's config.json",
    )


def make_session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- structure


def check_symbolic_axes(proto: Any, model: LanguageModel) -> CheckResult:
    """tokens' batch and time axes, and each state's batch (and memory) axis, are symbolic."""
    inputs = {value.name: value for value in proto.graph.input}
    wanted: dict[str, list[int]] = {"tokens": [0, 1]}
    for spec in model.state_spec():
        axes = [spec.batch_axis] + ([spec.time_axis] if spec.time_axis is not None else [])
        wanted[f"state_{spec.name}"] = axes
    if sorted(inputs) != sorted(wanted):
        raise _fail("inputs", f"graph inputs {sorted(inputs)}, expected {sorted(wanted)}")
    for name, axes in wanted.items():
        dims = inputs[name].type.tensor_type.shape.dim
        for axis in axes:
            if axis >= len(dims) or not dims[axis].dim_param:
                fixed = [d.dim_param or d.dim_value for d in dims]
                raise _fail("symbolic axes", f"input {name} has shape {fixed}, axis {axis} fixed")
    return CheckResult("symbolic axes", 0.0)


# --------------------------------------------------------------------------- numbers


def random_state(model: LanguageModel, batch: int, past: int, rng: np.random.Generator) -> Feeds:
    """Non-zero states (memories and caches ``past`` long), as ORT feeds."""
    feeds: Feeds = {}
    for spec in model.state_spec():
        shape = [batch if d == "batch" else past if d == "time" else int(d) for d in spec.shape]
        feeds[f"state_{spec.name}"] = (rng.standard_normal(shape) * 0.5).astype(np.float32)
    return feeds


def initial_feeds(model: LanguageModel, batch: int) -> Feeds:
    return {
        f"state_{spec.name}": tensor.numpy()
        for spec, tensor in zip(model.state_spec(), model.initial_state(batch), strict=True)
    }


def torch_outputs(model: LanguageModel, feeds: Feeds) -> dict[str, np.ndarray]:
    """The PyTorch model's outputs under the graph's output names."""
    tokens = torch.from_numpy(feeds["tokens"])
    state = tuple(torch.from_numpy(feeds[f"state_{s.name}"]) for s in model.state_spec())
    with torch.no_grad():
        logits, new_state, extras = model.forward_with_extras(tokens, state or None)
    out = {"logits": logits.numpy()}
    for spec, tensor in zip(model.state_spec(), new_state, strict=True):
        out[f"new_{spec.name}"] = tensor.numpy()
    for name in model.extras_names():
        out[name] = extras[name].numpy()
    return out


def ort_outputs(session: Any, feeds: Feeds) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def compare(
    check: str, expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], where: str
) -> float:
    """Largest absolute difference over every output; raises past ``TOLERANCE`` (+ relative)."""
    worst = 0.0
    for name, want in expected.items():
        got = actual.get(name)
        if got is None or got.shape != want.shape:
            shape = None if got is None else got.shape
            raise _fail(check, f"output {name} has shape {shape}, expected {want.shape} ({where})")
        if want.size == 0:
            continue
        diff = np.abs(got.astype(np.float64) - want)
        limit = TOLERANCE + TOLERANCE * np.abs(want)
        if not np.all(diff <= limit):
            raise _fail(
                check, f"{name} differs by {float(diff.max()):.3g} > {TOLERANCE:g} ({where})"
            )
        worst = max(worst, float(diff.max()))
    return worst


def parity_feeds(
    model: LanguageModel, batch: int, time: int, rng: np.random.Generator
) -> tuple[Feeds, str]:
    config = model.config
    if not model.stateful:  # a window model always reads a full window
        tokens = rng.integers(0, config.vocab_size, (batch, config.context))
        return {"tokens": tokens}, f"batch {batch}, window {config.context}"
    past = RANDOM_PAST
    if config.arch == "transformer":  # positions past + time must stay within the context
        time = min(time, config.context)
        past = min(past, config.context - time)
    tokens = rng.integers(0, config.vocab_size, (batch, time))
    feeds = {"tokens": tokens, **random_state(model, batch, past, rng)}
    return feeds, f"batch {batch}, time {time}, past {past}"


def check_parity(model: LanguageModel, session: Any, seed: int = 0) -> CheckResult:
    """ORT and PyTorch agree on every output from random non-zero states."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch, time in PARITY_SHAPES:
        feeds, where = parity_feeds(model, batch, time, rng)
        worst = max(
            worst,
            compare("parity", torch_outputs(model, feeds), ort_outputs(session, feeds), where),
        )
    return CheckResult("parity", worst)


def check_steps(model: LanguageModel, session: Any, seed: int = 1) -> CheckResult:
    """From the initial (empty) state, single ORT steps agree with one pass over the tokens."""
    if not model.stateful:
        return CheckResult("steps", 0.0)
    rng = np.random.default_rng(seed)
    steps = STEPS if model.config.arch != "transformer" else min(STEPS, model.config.context)
    batch = 2
    tokens = rng.integers(0, model.config.vocab_size, (batch, steps))
    whole = ort_outputs(session, {"tokens": tokens, **initial_feeds(model, batch)})
    state = initial_feeds(model, batch)
    logits = []
    for t in range(steps):
        out = ort_outputs(session, {"tokens": tokens[:, t : t + 1], **state})
        logits.append(out["logits"])
        state = {f"state_{s.name}": out[f"new_{s.name}"] for s in model.state_spec()}
    stepped = {"logits": np.concatenate(logits, axis=1)}
    stepped.update({f"new_{s.name}": state[f"state_{s.name}"] for s in model.state_spec()})
    expected = {key: whole[key] for key in stepped}
    worst = compare("steps", expected, stepped, f"{steps} single steps vs one pass")
    return CheckResult("steps", worst)
