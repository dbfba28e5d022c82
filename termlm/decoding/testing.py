"""Toy models and a toy tokenizer, numpy only, for testing strategies and processors.

Plugin authors can use them too: every model here honours ``termlm.runtime.types.StepModel``.

* ``PieceTokenizer``: a fixed list of text pieces (id = index); decode concatenates them.
* ``BigramModel``: logits depend only on the last token (a [V, V] table); no real state.
* ``TinyRNN``: a small random recurrent model with state ``h`` [1, B, H] (batch axis 1).
* ``MemoryModel``: ``TinyRNN`` plus a growing memory ``mem`` [B, time, H] (time axis 1), like an
  attention memory or a key/value cache.
* ``WindowModel``: a window model (``stateful`` False) reading the whole padded window.
* ``CallCounter``: wraps a model and records the shape of every ``step`` call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from termlm.runtime.types import State, StepModel, StepOutput


class PieceTokenizer:
    """Token id i is ``pieces[i]``; id 0 is the pad, id 1 the unknown token."""

    def __init__(self, pieces: Sequence[str], eos_id: int | None = None) -> None:
        self.pieces = list(pieces)
        self.vocab_size = len(self.pieces)
        self.pad_id = 0
        self.unk_id = 1
        self.eos_id = eos_id
        self._longest = max((len(p) for p in self.pieces), default=1)

    def encode(self, text: str) -> list[int]:
        """Greedy longest match over the pieces; unknown characters become ``unk_id``."""
        index = {p: i for i, p in enumerate(self.pieces) if p and i not in (0, 1, self.eos_id)}
        ids: list[int] = []
        pos = 0
        while pos < len(text):
            for size in range(min(self._longest, len(text) - pos), 0, -1):
                piece = text[pos : pos + size]
                if piece in index:
                    ids.append(index[piece])
                    pos += size
                    break
            else:
                ids.append(self.unk_id)
                pos += 1
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        special = {0, 1, self.eos_id}
        return "".join(self.pieces[i] for i in ids if i not in special)

    def token_text(self, token_id: int) -> str:
        return self.pieces[token_id]


def char_tokenizer(alphabet: str, eos: bool = False) -> PieceTokenizer:
    """A character tokenizer: ``<pad>`` (id 0), ``<unk>`` (id 1), ``<eos>`` (id 2, only with
    ``eos=True``), then one id per character of ``alphabet``: ``char_tokenizer("ab")`` has 4
    tokens and "a" is id 2. The loop never emits the pad and unknown tokens."""
    pieces = ["<pad>", "<unk>", *(["<eos>"] if eos else []), *alphabet]
    return PieceTokenizer(pieces, eos_id=2 if eos else None)


class BigramModel:
    """logits[b, t] = table[tokens[b, t]]. The state is a step counter ``n`` [B, 1]."""

    stateful = True

    def __init__(self, table: np.ndarray, context: int = 64) -> None:
        self.table = np.asarray(table, dtype=np.float32)  # [V, V]
        self.vocab_size = int(self.table.shape[0])
        self.context = context

    def initial_state(self, batch: int) -> State:
        return {"n": np.zeros((batch, 1), dtype=np.float32)}

    def state_batch_axes(self) -> dict[str, int]:
        return {"n": 0}

    def step(self, tokens: np.ndarray, state: State) -> StepOutput:
        tokens = np.asarray(tokens, dtype=np.int64)  # [B, T]
        return StepOutput(self.table[tokens], {"n": state["n"] + tokens.shape[1]})


class TinyRNN:
    """h' = tanh(W h + E[x]); logits = U h' * sharpness. Random weights from ``seed``."""

    stateful = True

    def __init__(
        self,
        vocab_size: int,
        hidden: int = 16,
        seed: int = 0,
        context: int = 64,
        sharpness: float = 3.0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.vocab_size = vocab_size
        self.context = context
        self.hidden = hidden
        self.embed = rng.normal(0, 1, (vocab_size, hidden)).astype(np.float32)
        self.w = rng.normal(0, 0.5 / np.sqrt(hidden), (hidden, hidden)).astype(np.float32)
        self.u = (rng.normal(0, 1, (hidden, vocab_size)) * sharpness / np.sqrt(hidden)).astype(
            np.float32
        )

    def initial_state(self, batch: int) -> State:
        return {"h": np.zeros((1, batch, self.hidden), dtype=np.float32)}

    def state_batch_axes(self) -> dict[str, int]:
        return {"h": 1}

    def _run(self, tokens: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = []
        for t in range(tokens.shape[1]):
            h = np.tanh(h @ self.w + self.embed[tokens[:, t]])  # [B, H]
            outs.append(h)
        return np.stack(outs, axis=1), h  # [B, T, H], [B, H]

    def step(self, tokens: np.ndarray, state: State) -> StepOutput:
        tokens = np.asarray(tokens, dtype=np.int64)  # [B, T]
        hs, h = self._run(tokens, state["h"][0])
        logits = (hs @ self.u).astype(np.float32)  # [B, T, V]
        return StepOutput(logits, {"h": h[None]}, {"hidden": hs})


class MemoryModel(TinyRNN):
    """A ``TinyRNN`` whose logits also read the mean of a growing memory of hidden states."""

    def initial_state(self, batch: int) -> State:
        state = super().initial_state(batch)
        state["mem"] = np.zeros((batch, 0, self.hidden), dtype=np.float32)
        return state

    def state_batch_axes(self) -> dict[str, int]:
        return {"h": 1, "mem": 0}

    def state_time_axes(self) -> dict[str, int]:
        return {"mem": 1}

    def step(self, tokens: np.ndarray, state: State) -> StepOutput:
        tokens = np.asarray(tokens, dtype=np.int64)
        hs, h = self._run(tokens, state["h"][0])
        mem = np.concatenate([state["mem"], hs], axis=1)  # [B, M + T, H]
        count = np.arange(state["mem"].shape[1] + 1, mem.shape[1] + 1)[None, :, None]
        means = np.cumsum(mem, axis=1)[:, -tokens.shape[1] :] / count  # [B, T, H]
        logits = ((hs + 0.5 * means) @ self.u).astype(np.float32)
        return StepOutput(logits, {"h": h[None], "mem": mem})


class WindowModel:
    """A window model: logits from the whole window [B, context] (pre-padded with 0)."""

    stateful = False

    def __init__(self, vocab_size: int, context: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.vocab_size = vocab_size
        self.context = context
        self.weights = rng.normal(0, 1.5, (context, vocab_size, vocab_size)).astype(np.float32)

    def initial_state(self, batch: int) -> State:
        return {}

    def state_batch_axes(self) -> dict[str, int]:
        return {}

    def step(self, tokens: np.ndarray, state: State) -> StepOutput:
        tokens = np.asarray(tokens, dtype=np.int64)  # [B, context]
        if tokens.shape[1] != self.context:
            raise ValueError(f"window model wants {self.context} tokens, got {tokens.shape[1]}")
        positions = np.arange(self.context)[None, :]
        logits = self.weights[positions, tokens].mean(axis=1)  # [B, V]
        return StepOutput(logits[:, None, :].astype(np.float32), {})


class CallCounter:
    """Wraps a model; ``calls`` holds the tokens shape (B, T) of every step."""

    def __init__(self, model: StepModel) -> None:
        self.inner = model
        self.vocab_size = model.vocab_size
        self.stateful = model.stateful
        self.context = model.context
        self.calls: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> object:  # state_time_axes, when the model has it
        return getattr(self.inner, name)

    def initial_state(self, batch: int) -> State:
        return self.inner.initial_state(batch)

    def state_batch_axes(self) -> dict[str, int]:
        return self.inner.state_batch_axes()

    def step(self, tokens: np.ndarray, state: State) -> StepOutput:
        self.calls.append((int(tokens.shape[0]), int(tokens.shape[1])))
        return self.inner.step(tokens, state)
