"""DistributedDataParallel under torchrun: gloo on the CPU, nccl on GPUs; rank 0 does the I/O."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar, overload

import torch
import torch.distributed as torch_dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend)
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return DistInfo(rank=rank, world_size=world, device=device)


T = TypeVar("T")


def rank_share(epoch_batches: Sequence[T], info: DistInfo) -> Sequence[T]:
    """This rank's batches of an epoch: every world_size-th one from its rank on, so the ranks
    read disjoint windows; every rank takes the same number, or DDP would wait (an epoch of
    fewer batches than ranks is repeated)."""
    if info.world_size <= 1:
        return epoch_batches
    world, total = info.world_size, len(epoch_batches)
    usable = max(world, total // world * world)
    return _Share(epoch_batches, info.rank, world, usable // world)


class _Share(Sequence[T]):
    """Every world-th batch from ``rank`` on, read when asked for (the epoch may be long)."""

    def __init__(self, batches: Sequence[T], rank: int, world: int, count: int) -> None:
        self.batches, self.rank, self.world, self.size = batches, rank, world, count

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.batches[(self.rank + index * self.world) % len(self.batches)]


def teardown(info: DistInfo, *, finished: bool = False) -> None:
    """Leave the process group. ``finished``: the run ended normally on this rank, so every rank
    first waits for the others at a barrier: a rank that tore its group down while the other was
    still writing its results was seen to abort (SIGABRT) now and then. After an error no rank
    waits (the others may never come)."""
    if info.world_size > 1 and torch_dist.is_initialized():
        if finished:
            torch_dist.barrier()
        torch_dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    if info.world_size <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = (
        [info.device.index] if info.device is not None and info.device.type == "cuda" else None
    )
    return DistributedDataParallel(model, device_ids=device_ids)


def agree(flag: bool, info: DistInfo) -> bool:
    """Rank 0's decision, shared by every rank (so all stop at the same step)."""
    if info.world_size <= 1:
        return flag
    device = info.device or torch.device("cpu")
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    torch_dist.broadcast(tensor, src=0)
    return bool(tensor.item() > 0.5)


def weights_in_sync(model: torch.nn.Module, info: DistInfo) -> bool:
    """Whether every rank holds the same weights (checked by comparing a checksum)."""
    device = info.device or torch.device("cpu")
    total = torch.zeros(1, dtype=torch.float64, device=device)
    for p in model.parameters():
        total += p.detach().double().sum() + (p.detach().double() ** 2).sum()
    gathered = [torch.zeros_like(total) for _ in range(info.world_size)]
    torch_dist.all_gather(gathered, total)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])
