"""An exponential moving average of the weights (``--ema``), the averaging of AWD-LSTM's ASGD
done the AdamW way: validation, the best checkpoint and the exported model use the average, the
optimizer keeps stepping the raw weights.

The decay at step t is ``min(decay, (1 + t) / (10 + t))``: early on, when the weights move fast,
the average follows them closely; after a few thousand steps it holds about ``1 / (1 - decay)``
steps. It pays in a long run whose learning rate stays high for long (the bundled word model's
recipe: perplexity 1 to 3% below the raw weights' from a few epochs on), not in a default-length
run, whose decayed learning rate has already settled the weights (README, "Word models"), so it
is off unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

PREFIX = "avg."  # the average's tensors in trainer.safetensors


class WeightAverage:
    """The average of ``params`` (the optimizer's: frozen parameters do not change)."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the average's decay must be in (0, 1), got {decay}")
        self.params = params
        self.decay = decay
        self.steps = 0
        self.average = [p.detach().clone() for p in params]

    def rate(self) -> float:
        """The decay of the next update."""
        return min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))

    @torch.no_grad()
    def update(self) -> None:
        """After an optimizer step: move the average towards the weights."""
        weight = 1.0 - self.rate()
        for a, p in zip(self.average, self.params, strict=True):
            a.lerp_(p, weight)
        self.steps += 1

    @torch.no_grad()
    def _swap(self) -> None:
        for a, p in zip(self.average, self.params, strict=True):
            raw = p.detach().clone()
            p.copy_(a)
            a.copy_(raw)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the average inside the block, its raw weights again after it (the
        same bits: the two are swapped, not recomputed)."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"{PREFIX}steps": torch.tensor(self.steps, dtype=torch.int64)}
        for i, a in enumerate(self.average):
            tensors[f"{PREFIX}{i}"] = a.detach().cpu().contiguous()
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """From a checkpoint; a checkpoint without an average (a run from before ``--ema``)
        starts the average at the weights it resumes from. ValueError if it does not fit."""
        if f"{PREFIX}steps" not in tensors:
            self.average = [p.detach().clone() for p in self.params]
            return
        count = len([k for k in tensors if k.startswith(PREFIX)]) - 1
        if count != len(self.params):
            raise ValueError("the saved weight average has a different number of parameters")
        average = []
        for i, p in enumerate(self.params):
            saved = tensors[f"{PREFIX}{i}"]
            if saved.shape != p.shape:
                raise ValueError(
                    f"averaged parameter {i}: saved shape {tuple(saved.shape)} != {tuple(p.shape)}"
                )
            average.append(saved.to(p.device, p.dtype).clone())
        self.average = average
        self.steps = int(tensors[f"{PREFIX}steps"])


@contextmanager
def averaged(average: WeightAverage | None) -> Iterator[None]:
    """``average.applied()``, or nothing when the run keeps no average."""
    if average is None:
        yield
        return
    with average.applied():
        yield
