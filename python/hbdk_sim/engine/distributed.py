"""Data-parallel training through torch.distributed: process-group setup from torchrun's environment
(RANK, WORLD_SIZE, LOCAL_RANK), DistributedDataParallel wrapping (SyncBatchNorm on GPU), samplers
that split a dataset across ranks, and the collective helpers the engine uses (barrier, metric-state
all-reduce, object gather).

Every helper also works in a single process without a process group (world size 1), so the engine
and the tools run unchanged with or without torchrun.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence, Sized
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

from hbdk_sim.errors import UsageError, UsageTypeError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def default_device() -> torch.device:
    """cuda:LOCAL_RANK when a GPU is present, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from None


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group torchrun describes in the environment (nccl on CUDA, gloo on CPU,
    unless `backend` says otherwise). Without WORLD_SIZE > 1 nothing is initialised and the process
    is rank 0 of 1. Calling it again returns the existing group's info."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = default_device()
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return DistInfo(get_rank(), get_world_size(), local_rank, device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if backend is None:
        backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, world_size, local_rank, device)


def destroy_distributed() -> None:
    """Wait for every rank, then tear the process group down (a no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_session(backend: str | None = None) -> Iterator[DistInfo]:
    """`with distributed_session() as info:` joins the process group and always leaves it cleanly."""
    info = init_distributed(backend)
    try:
        yield info
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def wrap_model(model: nn.Module, device: torch.device, *, find_unused_parameters: bool = False,
               sync_bn: bool | None = None) -> nn.Module:
    """Wrap `model` (already on `device`) in DistributedDataParallel when there are several ranks.
    BatchNorm becomes SyncBatchNorm on GPU (`sync_bn=None` means: on CUDA only; SyncBatchNorm has
    no CPU kernels)."""
    if not is_distributed():
        return model
    if sync_bn is None:
        sync_bn = device.type == "cuda"
    if sync_bn:
        if device.type != "cuda":
            raise UsageError("sync_bn=True needs CUDA devices; SyncBatchNorm has no CPU implementation")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world_size, ... of the dataset, in order and without padding, so that
    the ranks together see every sample exactly once (what evaluation needs; DistributedSampler
    repeats samples to even out the shards)."""

    def __init__(self, dataset: Sized, rank: int | None = None, world_size: int | None = None) -> None:
        self.size = len(dataset)
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return max(0, math.ceil((self.size - self.rank) / self.world_size))


class SequenceShardSampler(Sampler[int]):
    """Evaluation shards of whole sequences, for datasets of video frames stored sequence after
    sequence (`sequence_lengths`, frames per sequence in storage order): a tracker carries its state
    from frame to frame, so each rank gets whole sequences and walks their frames in order. The
    sequences go, longest first, to the rank with the fewest frames so far (the lowest rank on a
    tie); a rank's sequences keep their storage order. The ranks together see every frame once."""

    def __init__(self, sequence_lengths: Sequence[int], rank: int | None = None, world_size: int | None = None
                 ) -> None:
        rank = get_rank() if rank is None else rank
        world_size = get_world_size() if world_size is None else world_size
        starts = [0]
        for n in sequence_lengths:
            starts.append(starts[-1] + int(n))
        load = [0] * world_size
        mine = []
        for k in sorted(range(len(sequence_lengths)), key=lambda k: (-int(sequence_lengths[k]), k)):
            target = min(range(world_size), key=lambda r: (load[r], r))
            load[target] += int(sequence_lengths[k])
            if target == rank:
                mine.append(k)
        self.indices = [i for k in sorted(mine) for i in range(starts[k], starts[k + 1])]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_sampler(dataset: Sized, *, shuffle: bool, seed: int = 0, drop_last: bool = False,
                  sequence_lengths: Sequence[int] | None = None) -> Sampler | None:
    """A sampler for `dataset` on this rank: DistributedSampler for training (shuffle=True) and, for
    evaluation when there are several ranks, SequenceShardSampler when the dataset's frames form
    `sequence_lengths` (video), else ShardSampler; None (the DataLoader default) in a single process.
    The trainer calls `set_epoch` on samplers that have it."""
    if not is_distributed():
        return None
    if shuffle:
        return DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=drop_last)
    if sequence_lengths is not None:
        return SequenceShardSampler(sequence_lengths)
    return ShardSampler(dataset)


def _collective_device() -> torch.device:
    return default_device() if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum_(tensors: list[torch.Tensor]) -> None:
    """Sum each tensor over the ranks, in place (tensors may live on any device)."""
    if not is_distributed():
        return
    device = _collective_device()
    for t in tensors:
        buf = t.detach().to(device)
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        t.copy_(buf.to(t.device))


def reduce_metric(metric: Any) -> None:
    """Combine a metric's state over the ranks before `compute()`. The metric names its summable
    tensor attributes in `sum_states` (e.g. `sum_states = ("confusion",)` for mIoU, whose confusion
    matrices add up) and its list attributes to concatenate in `gather_states` (e.g. detections,
    gathered in rank order); a metric with neither cannot be combined and is refused under several
    ranks."""
    if not is_distributed():
        return
    names = getattr(metric, "sum_states", None)
    lists = getattr(metric, "gather_states", None)
    if names is None and lists is None:
        raise UsageTypeError(f"{type(metric).__name__} cannot be reduced across ranks: give it a `sum_states` tuple "
                             "naming its summable tensor attributes or `gather_states` naming its lists")
    tensors = []
    for name in names or ():
        value = getattr(metric, name, None)
        if not isinstance(value, torch.Tensor):
            raise UsageTypeError(f"{type(metric).__name__}.{name} is listed in sum_states but is "
                                 f"{type(value).__name__}, not a tensor")
        tensors.append(value)
    if tensors:
        all_reduce_sum_(tensors)
    for name in lists or ():
        value = getattr(metric, name, None)
        if not isinstance(value, list):
            raise UsageTypeError(f"{type(metric).__name__}.{name} is listed in gather_states but is "
                                 f"{type(value).__name__}, not a list")
        setattr(metric, name, [item for part in all_gather_object(value) for item in part])


def all_gather_object(obj: Any) -> list[Any]:
    """`obj` from every rank, in rank order (`[obj]` in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
