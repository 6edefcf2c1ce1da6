"""The batches of one epoch: a DataLoader over this rank's share, and the seeded generator of on-device
augmentation; both depend only on (seed, epoch, rank), which is what makes `--resume` exact."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.loader import SlotLoader
from ..data.shm import batch_bytes, is_shm_exhausted, shm_error
from ..data.worker_life import DataLoaderWorkerInit, signals_held
from .distributed import DistInfo

LOADERS = ("slots", "torch")


def epoch_loader(dataset: Dataset, dist: DistInfo, batch_size: int, workers: int, train: bool, seed: int,
                 epoch: int, loader: str = "slots") -> Iterable[dict[str, Any]]:
    """This rank's batches of `dataset` for `epoch`: shuffled and complete batches only when training.

    The dataset's own epoch (`set_epoch`, when it has one) is set too, so its random draws change per epoch.
    loader="slots" (datasets with `item_spec`) uses `train.data.loader.SlotLoader` (a shared-memory slot ring
    with workers, in-process without), "torch" PyTorch's DataLoader. Both give the same batches in the same
    order; the DataLoader also draws a seed from torch's global generator per iteration, so the two shift
    later random draws (dropout) differently."""
    if loader not in LOADERS:
        raise ValueError(f"loader must be one of {', '.join(LOADERS)}, got {loader!r}")
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=train, seed=seed,
                                 drop_last=train)
    sampler.set_epoch(epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    forks = workers == 0 or "fork" in torch.multiprocessing.get_all_start_methods()
    if loader == "slots" and hasattr(dataset, "item_spec") and forks:  # no fork (Windows): the DataLoader
        return SlotLoader(dataset, list(sampler), batch_size, workers, drop_last=train)
    data_loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=train, num_workers=workers,
                             pin_memory=dist.device.type == "cuda", persistent_workers=False,
                             worker_init_fn=DataLoaderWorkerInit(os.getpid()) if workers else None)
    return HeldStart(data_loader) if workers else data_loader


class HeldStart:
    """A DataLoader whose workers are forked with SIGINT and SIGTERM held (see `signals_held`) and whose
    running out of shared memory is one line (`shm_error`); iterable again and sized like the DataLoader."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with signals_held():
            batches = iter(self.loader)      # forks the workers
        error = None
        try:
            yield from batches
        except RuntimeError as exc:
            if not is_shm_exhausted(exc):
                raise
            workers = self.loader.num_workers
            batches_held = workers * (self.loader.prefetch_factor or 2)
            error = shm_error(batches_held, batch_bytes(self.loader.dataset, self.loader.batch_size or 1), workers,
                              self.loader.batch_size or 1)
        finally:
            # Stop the workers now, not when the iterator is garbage-collected: they ignore SIGTERM, so at exit
            # multiprocessing would wait for them forever while an error's traceback still holds the iterator.
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
        if error is not None:
            raise error          # outside the except block: no traceback of the worker's error kept alive


def augment_generator(dist: DistInfo, seed: int, epoch: int, split: str) -> torch.Generator:
    """The generator of on-device augmentation for (seed, epoch, rank, split), on this rank's device."""
    g = torch.Generator(device=dist.device)
    g.manual_seed(((seed * 1_000_003 + epoch) * 1_009 + dist.rank) * 2 + (split != "train"))
    return g
