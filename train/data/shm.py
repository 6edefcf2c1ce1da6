"""What data workers need from shared memory (/dev/shm), and the one-line error when it runs out: inside a
container Docker gives /dev/shm 64 MB unless told otherwise, far less than a few workers' batches need."""

from __future__ import annotations

import math
import shutil
from typing import Any

import torch

from .dataset import DataError

SHM = "/dev/shm"
MB = 1 << 20


def batch_bytes(dataset: Any, batch_size: int) -> int | None:
    """Bytes of one batch of `dataset` (from its `item_spec`), or None when it does not declare one."""
    if not hasattr(dataset, "item_spec"):
        return None
    spec = dataset.item_spec()
    item = sum(math.prod(shape) * torch.empty((), dtype=dtype).element_size() for shape, dtype in spec.values())
    return item * batch_size


def is_shm_exhausted(exc: BaseException) -> bool:
    """Whether an error (also one re-raised from a DataLoader worker) is shared memory running out."""
    text = str(exc)
    return "shared memory" in text and ("unable to allocate" in text or "No space left" in text
                                        or "out of shared memory" in text)


def shm_error(batches: int, batch: int | None, workers: int, batch_size: int) -> DataError:
    """The one line for shared memory running out: how much the loader needs (`batches` batches of `batch`
    bytes), how much /dev/shm has, and how to give it more."""
    try:
        usage = shutil.disk_usage(SHM)
        have = f"{SHM} has {usage.free / MB:.0f} MB free of {usage.total / MB:.0f} MB"
    except OSError:
        have = f"{SHM} is not available"
    if batch is None:
        need = f"{batches} batches of {batch_size} clips"
        ask = "--shm-size=8g"
    else:
        need_mb = batches * batch / MB
        need = f"about {need_mb:.0f} MB ({batches} batches of {batch_size} clips, {batch / MB:.1f} MB each)"
        ask = f"--shm-size={max(1, math.ceil(need_mb * 1.5 / 1024))}g"
    return DataError(f"out of shared memory: the data loader with data.workers={workers} needs {need} in {SHM}, "
                     f"and {have}; give it more (docker run {ask}, or --ipc=host; Slurm/Kubernetes: a larger "
                     f"/dev/shm) or lower data.workers or data.batch_size")
