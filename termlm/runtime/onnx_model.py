"""An exported model run with onnxruntime: the StepModel of termlm/runtime/types.py, in numpy.

    model = load_model("shakespeare-char.onnx")
    state = model.initial_state(1)
    out = model.step(np.array([[5, 7, 9]]), state)   # logits [1, 3, V], out.state carries on

The session is tuned for latency on one-token steps: one intra-op thread for small models,
sequential execution, every graph optimisation, and input/output names fixed once.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from termlm.bounds import check_threads
from termlm.errors import ModelFileError
from termlm.modelfile import ModelMeta, read_model_proto, summary_to_meta
from termlm.modelpath import REEXPORT, check_model_path, read_model_bytes
from termlm.runtime.types import State, StepOutput

if TYPE_CHECKING:
    from termlm.tokenizers import Tokenizer

# Above this many weight bytes a second or more threads pay for their synchronisation.
_SMALL_MODEL_BYTES = 32 * 1024 * 1024


def default_threads(weight_bytes: int) -> int:
    """One thread for small models (a step is microseconds of work); a few for big ones."""
    if weight_bytes < _SMALL_MODEL_BYTES:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


class OnnxLanguageModel:
    """A termlm model file behind an onnxruntime session. Implements StepModel."""

    def __init__(self, session: Any, meta: ModelMeta, path: Path, weight_bytes: int) -> None:
        self.session = session
        self.meta = meta
        self.path = path
        self.name = meta.name
        self.vocab_size = meta.vocab_size
        self.stateful = meta.stateful
        self.context = meta.context
        self.weight_bytes = weight_bytes  # initializer payload: what one step reads from memory
        self.pad_id = meta.special.pad if meta.special.pad is not None else 0
        self._state_names = tuple(spec.name for spec in meta.state)
        self._input_names = {name: f"state_{name}" for name in self._state_names}
        self._output_names = [
            "logits",
            *(f"new_{name}" for name in self._state_names),
            *meta.extras,
        ]
        self._vocab_checked = False  # the logits' last axis against vocab_size
        self._check_graph()

    def _check_graph(self) -> None:
        inputs = {node.name for node in self.session.get_inputs()}
        outputs = {node.name for node in self.session.get_outputs()}
        wanted_in = {"tokens", *self._input_names.values()}
        missing = (wanted_in - inputs) | (set(self._output_names) - outputs)
        if missing or inputs - wanted_in:
            extra = sorted(inputs - wanted_in)
            raise ModelFileError(
                f"its graph does not match its metadata (missing {sorted(missing)}, "
                f"unexpected inputs {extra})",
                REEXPORT,
            )
        logits = next(node for node in self.session.get_outputs() if node.name == "logits")
        shape = list(getattr(logits, "shape", None) or [])
        last = shape[-1] if shape else None
        if isinstance(last, int) and last > 0:
            self._check_vocab(last)  # static: known before any step
            self._vocab_checked = True

    def _check_vocab(self, size: int) -> None:
        if size != self.vocab_size:
            raise ModelFileError(
                f"its metadata says {self.vocab_size} tokens but its graph gives scores for "
                f"{size}; its numbers would be wrong",
                REEXPORT,
            )

    def __repr__(self) -> str:
        return f"OnnxLanguageModel({self.name!r}, arch={self.meta.arch}, vocab={self.vocab_size})"

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """The model's own tokenizer, read from its metadata (ModelFileError if damaged)."""
        from termlm.errors import TokenizerError
        from termlm.tokenizers import tokenizer_from_json

        try:
            tokenizer = tokenizer_from_json(self.meta.tokenizer)
        except TokenizerError as exc:
            raise ModelFileError(
                f"cannot use {str(self.path)!r}: its tokenizer is damaged ({exc.message})", REEXPORT
            ) from None
        if tokenizer.vocab_size != self.vocab_size:
            raise ModelFileError(
                f"cannot use {str(self.path)!r}: its tokenizer has {tokenizer.vocab_size} tokens "
                f"but the model {self.vocab_size}",
                REEXPORT,
            )
        return tokenizer

    # ------------------------------------------------------------------- the StepModel contract

    def initial_state(self, batch: int) -> State:
        """Zeros of the metadata's shapes; memories and caches start with a time axis of 0."""
        state: State = {}
        for spec in self.meta.state:
            shape = [
                batch if dim == "batch" else 0 if dim == "time" else int(dim) for dim in spec.shape
            ]
            state[spec.name] = np.zeros(shape, dtype=np.float32)
        return state

    def state_batch_axes(self) -> dict[str, int]:
        return {spec.name: spec.batch_axis for spec in self.meta.state}

    def state_time_axes(self) -> dict[str, int]:
        """The growing axis of memories and caches (absent for fixed-size states)."""
        return {spec.name: spec.time_axis for spec in self.meta.state if spec.time_axis is not None}

    def window(self, tokens: np.ndarray) -> np.ndarray:
        """A window model's input: the last `context` tokens, pre-padded with the pad id."""
        length = tokens.shape[1]
        if length >= self.context:
            return tokens[:, length - self.context :]
        pad = np.full((tokens.shape[0], self.context - length), self.pad_id, dtype=np.int64)
        return np.concatenate([pad, tokens], axis=1)

    def step(self, tokens: np.ndarray, state: State) -> StepOutput:
        """tokens [B, T] int64 (a 1-d array is one row) -> logits [B, T, V] (window: [B, 1, V])."""
        ids = tokens
        if type(ids) is not np.ndarray or ids.dtype != np.int64 or ids.ndim != 2:
            ids = np.asarray(tokens, dtype=np.int64)
            if ids.ndim == 1:
                ids = ids[None, :]
            if ids.ndim != 2:
                raise ValueError(f"tokens must be [batch, time], got shape {ids.shape}")
        if not self.stateful:
            ids = self.window(ids)
        feeds: dict[str, np.ndarray] = {"tokens": np.ascontiguousarray(ids)}
        for name, input_name in self._input_names.items():
            value = state[name]
            if value.dtype != np.float32:
                value = value.astype(np.float32)
            feeds[input_name] = value
        outputs = self.session.run(self._output_names, feeds)
        if not self._vocab_checked:  # a symbolic axis: checked on the first step
            logits = outputs[0]
            try:
                self._check_vocab(int(logits.shape[-1]) if getattr(logits, "ndim", 0) else -1)
            except ModelFileError as exc:
                raise ModelFileError(
                    f"cannot use {str(self.path)!r}: {exc.message}", exc.hint
                ) from None
            self._vocab_checked = True
        n_state = len(self._state_names)
        new_state = dict(zip(self._state_names, outputs[1 : 1 + n_state], strict=True))
        extras = dict(zip(self.meta.extras, outputs[1 + n_state :], strict=True))
        return StepOutput(logits=outputs[0], state=new_state, extras=extras)


def session_options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings on the user's terminal
    return options


def load_model(path: str | Path, *, threads: int | None = None) -> OnnxLanguageModel:
    """Check a model file and open it with onnxruntime (CPU). ModelFileError if unusable."""
    path = check_model_path(path)
    data = read_model_bytes(path)
    try:
        summary = read_model_proto(data)
        meta = summary_to_meta(summary)
    except ModelFileError as exc:
        raise ModelFileError(f"cannot use {str(path)!r}: {exc.message}", exc.hint) from None
    check_threads(threads)
    n_threads = threads or default_threads(summary.initializer_bytes)

    import onnxruntime as ort

    try:
        # From bytes: onnxruntime cannot follow references to files next to the model.
        # No fallback: onnxruntime would print "EP Error" banners on stdout and try again.
        session = ort.InferenceSession(
            data,
            sess_options=session_options(n_threads),
            providers=["CPUExecutionProvider"],
            enable_fallback=0,
        )
    except Exception as exc:  # onnxruntime raises its own exception types, all unrelated
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        if "external" in detail.lower():
            raise ModelFileError(
                f"cannot use {str(path)!r}: it references external data; termlm model files "
                "are self-contained",
                REEXPORT,
            ) from None
        raise ModelFileError(
            f"cannot use {str(path)!r}: onnxruntime cannot load it ({detail})",
            f"the file may be damaged or need a newer onnxruntime; {REEXPORT}",
        ) from None
    del data
    try:
        return OnnxLanguageModel(session, meta, path, summary.initializer_bytes)
    except ModelFileError as exc:
        raise ModelFileError(f"cannot use {str(path)!r}: {exc.message}", exc.hint) from None
    except Exception as exc:  # a graph onnxruntime loaded but cannot describe (bad UTF-8 names)
        raise ModelFileError(
            f"cannot use {str(path)!r}: its graph cannot be read ({type(exc).__name__})", REEXPORT
        ) from None
