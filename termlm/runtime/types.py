"""The stepping contract every runnable model honours, in numpy.

A model takes token ids and its state, and returns logits and the new state:

    step(tokens[B, T] int64, state) -> StepOutput(logits[B, T', V] float32, state, extras)

* The state is a dict of named arrays (h; h and c; attention memory; key/value cache). Every
  array has a batch axis, given by ``state_batch_axes``, so beams can be reordered with
  ``reorder_state``. ``initial_state(B)`` is the state before any token (zeros, or an empty
  memory/cache with a time axis of length 0).
* ``T'`` is ``T`` for causal models: position t holds the logits of the token after tokens[:, t].
  A window model (``stateful`` False, the bidirectional recurrent models) cannot carry state: its
  state is empty, it must be given the whole window every time, and ``T'`` is 1 (the next token).
* ``extras`` carries optional views inside the model: ``"attention"`` [B, T, S] (the weights over
  the S remembered positions), ``"hidden"`` [B, T, H] (the top layer's hidden state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

State = dict[str, np.ndarray]


@dataclass
class StepOutput:
    logits: np.ndarray  # [B, T', V] float32
    state: State
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class StepModel(Protocol):
    vocab_size: int
    stateful: bool
    context: int  # the training window; a stateful model's memory/cache may not exceed it

    def initial_state(self, batch: int) -> State: ...

    def step(self, tokens: np.ndarray, state: State) -> StepOutput: ...

    def state_batch_axes(self) -> dict[str, int]: ...


def reorder_state(state: State, axes: dict[str, int], index: np.ndarray) -> State:
    """Select (and repeat) batch rows of every state array: beams forking and dying."""
    return {name: np.take(value, index, axis=axes[name]) for name, value in state.items()}
