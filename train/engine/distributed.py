"""torchrun/DDP plumbing: process group from the environment, a gather that keeps gradients, and
rank-0-only side effects. One process without torchrun is simply rank 0 of 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    """Where this process stands: rank, world size, and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this rank's GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (NCCL on GPU, gloo on CPU), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for each piece and returns this rank's."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        pieces = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(pieces, t)
        return tuple(pieces)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        stacked = torch.stack(grads)
        dist.all_reduce(stacked)
        return stacked[dist.get_rank()]


def wrap_for_ranks(model: nn.Module, info: DistInfo, sync_bn: bool = True) -> tuple[nn.Module, nn.Module]:
    """(model, net) for training on `info`'s device: across GPUs BatchNorm becomes SyncBatchNorm (when
    `sync_bn`), and under torchrun `net` is the DistributedDataParallel wrapper of `model`, else `model`."""
    if info.distributed and info.device.type == "cuda" and sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if not info.distributed:
        return model, model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return model, nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate `t` (same shape on every rank) along dim 0 over all ranks, keeping gradients."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    return torch.cat(_AllGather.apply(t.contiguous()), dim=0)


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of floats over all ranks (for logging: every rank then holds the same numbers)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1 or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any rank (all ranks stop together)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown(synchronise: bool = False) -> None:
    """Leave the process group; with `synchronise`, first wait for every rank (a rank that tears down gloo
    while another still talks to it can abort with "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def process_group(device_name: str = "auto") -> Iterator[DistInfo]:
    """init_distributed for the with-block; leaving it, shutdown: after every rank has arrived when the block
    finished, at once after an error (other ranks may never arrive)."""
    dist = init_distributed(device_name)
    finished = False
    try:
        yield dist
        finished = True
    finally:
        shutdown(synchronise=finished)


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order (a one-element list without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def exit_process(code: int) -> NoReturn:
    """End a command's process with `code`. A torchrun rank skips interpreter teardown: DDP keeps gloo's
    worker threads alive past destroy_process_group (PyTorch 2.13), and one of them still running while
    Python finalises can abort a finished rank ("terminate called without an active exception"), failing
    the whole job. Checkpoints, TensorBoard files and reports are closed before this point."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
