"""Training batches as numpy arrays: the stream way, the window way and the tutorial's way.

Every source is deterministic given (seed, epoch), so a run resumed at (epoch, batch) sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from termlm.errors import CorpusError
from termlm.tokenizers.common import PAD_ID


@dataclass(frozen=True)
class Batch:
    inputs: np.ndarray  # [B, T] int64 (the token stream itself may be stored as uint16)
    targets: np.ndarray  # [B, T] every position predicts the next token, or [B, 1] the last only


class StreamBatches:
    """The corpus as one token stream cut into contiguous chunks of `context` tokens.

    Each epoch starts at a random offset and visits the chunks in a random order.
    """

    def __init__(self, ids: np.ndarray, context: int, batch_size: int, seed: int) -> None:
        if len(ids) < 2:
            raise CorpusError(
                f"the training text has {len(ids)} token(s); at least 2 are needed",
                "use a longer corpus or a finer --level (char)",
            )
        self.ids = ids
        self.context = min(context, len(ids) - 1)
        self.batch_size = batch_size
        self.seed = seed
        self.n_chunks = max(1, (len(ids) - 1) // self.context)

    def batches_per_epoch(self) -> int:
        return max(1, -(-self.n_chunks // self.batch_size))

    def epoch(self, epoch: int) -> Sequence[np.ndarray]:
        """The chunk starts of every batch of this epoch (made as each batch is read)."""
        rng = np.random.default_rng([self.seed, epoch])
        spare = len(self.ids) - 1 - self.n_chunks * self.context
        offset = int(rng.integers(0, spare + 1))
        # the permutation rng.permutation(n) gives, held in 4 bytes a chunk, not 8 (nor a list)
        order = np.arange(self.n_chunks, dtype=np.uint32 if self.n_chunks < 2**32 else np.uint64)
        rng.shuffle(order)
        return StreamEpoch(order, offset, self.context, self.batch_size)

    def batch(self, starts: np.ndarray) -> Batch:
        index = starts[:, None] + np.arange(self.context + 1)[None, :]  # [B, T+1]
        window = self.ids[index].astype(np.int64)
        return Batch(window[:, :-1], window[:, 1:])


class WindowBatches(StreamBatches):
    """For window models: the `context` tokens before a position, pre-padded, predict it.

    A quarter of the windows are cut short and pre-padded, so the model also learns the short
    windows it sees at the start of a generation.
    """

    def __init__(
        self, ids: np.ndarray, context: int, batch_size: int, seed: int, pad_id: int = PAD_ID
    ) -> None:
        super().__init__(ids, context, batch_size, seed)
        self.pad_id = pad_id
        self.n_positions = len(ids) - 1

    def epoch(self, epoch: int) -> Sequence[np.ndarray]:
        return WindowEpoch(self, epoch)

    def rows(self, epoch: int, index: int) -> np.ndarray:
        """(target, window length) of each example of one batch, from its own seed."""
        rng = np.random.default_rng([self.seed, epoch, index])
        n = self.batch_size
        targets = rng.integers(1, len(self.ids), size=n)
        lengths = np.where(
            rng.random(n) < 0.25, rng.integers(1, self.context + 1, size=n), self.context
        )
        return np.stack([targets, lengths], axis=1)

    def batch(self, rows: np.ndarray) -> Batch:
        targets, lengths = rows[:, 0], rows[:, 1]
        # the window before each target [B, T]; positions before the text's start are padding
        index = targets[:, None] - self.context + np.arange(self.context)[None, :]
        windows = self.ids[np.maximum(index, 0)].astype(np.int64)
        keep = np.arange(self.context)[None, :] >= (self.context - lengths[:, None])
        windows = np.where(keep & (index >= 0), windows, self.pad_id)
        return Batch(windows, self.ids[targets][:, None].astype(np.int64))


class _Lazy(Sequence[np.ndarray]):
    """An epoch's batches, each made when it is read: memory does not grow with the corpus."""

    def _count(self) -> int:
        raise NotImplementedError

    def _batch(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._count()

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self._batch(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._batch(index)


class StreamEpoch(_Lazy):
    """Chunk starts ``offset + context * order[...]``, ``batch_size`` at a time."""

    def __init__(self, order: np.ndarray, offset: int, context: int, batch_size: int) -> None:
        self.order, self.offset, self.context, self.batch_size = order, offset, context, batch_size

    def _count(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def _batch(self, index: int) -> np.ndarray:
        part = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.offset + self.context * part.astype(np.int64)


class WindowEpoch(_Lazy):
    def __init__(self, source: WindowBatches, epoch: int) -> None:
        self.source, self.epoch = source, epoch

    def _count(self) -> int:
        return self.source.batches_per_epoch()

    def _batch(self, index: int) -> np.ndarray:
        return self.source.rows(self.epoch, index)


class PrefixBatches:
    """The tutorial's data: per line, every n-gram prefix, pre-padded to the longest; the last
    token of each prefix is the target."""

    def __init__(
        self, lines: Sequence[Sequence[int]], batch_size: int, seed: int, pad_id: int = PAD_ID
    ) -> None:
        sequences = [list(line[: i + 1]) for line in lines for i in range(1, len(line))]
        if not sequences:
            raise CorpusError(
                "the tutorial recipe found no line with two or more words",
                "give a corpus with several words per line",
            )
        width = max(len(s) for s in sequences)
        padded = np.full((len(sequences), width), pad_id, dtype=np.int64)
        for row, seq in enumerate(sequences):
            padded[row, width - len(seq) :] = seq
        self.inputs = padded[:, :-1]
        self.targets = padded[:, -1:]
        self.context = width - 1
        self.batch_size = batch_size
        self.seed = seed

    def batches_per_epoch(self) -> int:
        return max(1, -(-len(self.inputs) // self.batch_size))

    def epoch(self, epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.inputs))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def batch(self, rows: np.ndarray) -> Batch:
        return Batch(self.inputs[rows], self.targets[rows])
