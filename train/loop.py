"""Pieces every training loop here shares: a per-epoch DataLoader over this rank's share, the seeded
generator of on-device augmentation, and checkpoints of the training state with every rank's RNG states."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data.loader import SlotLoader
from .distributed import DistInfo, barrier, gather_objects

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
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=train, num_workers=workers,
                      pin_memory=dist.device.type == "cuda", persistent_workers=False)


def augment_generator(dist: DistInfo, seed: int, epoch: int, split: str) -> torch.Generator:
    """The generator of on-device augmentation for (seed, epoch, rank, split), on this rank's device."""
    g = torch.Generator(device=dist.device)
    g.manual_seed(((seed * 1_000_003 + epoch) * 1_009 + dist.rank) * 2 + (split != "train"))
    return g


def all_rng_states() -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (a collective: call it on every rank)."""
    return gather_objects(rng_state())  # type: ignore[return-value]


def restore_rng_states(states: list[dict[str, Any]], rank: int) -> None:
    """Set this rank's RNG states from a checkpoint (a run resumed on fewer ranks reuses the last state)."""
    set_rng_state(states[min(rank, len(states) - 1)])


def save_training_state(path: Path, dist: DistInfo, parts: dict[str, Any], **extra: Any) -> None:
    """Rank 0 writes each part's state_dict (model, optimizer, scheduler, scaler), every rank's RNG states
    and `extra` atomically; every rank waits for it (a collective)."""
    rngs = all_rng_states()
    if dist.is_main:
        save_checkpoint(path, {**{name: part.state_dict() for name, part in parts.items()}, "rng": rngs, **extra})
    barrier()


def load_training_state(path: Path, dist: DistInfo, parts: dict[str, Any]) -> dict[str, Any]:
    """Load each part's state_dict and this rank's RNG states from a save_training_state checkpoint; the
    checkpoint, for the rest of what it holds (epoch, step, ...)."""
    state = load_checkpoint(path, map_location=dist.device)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    restore_rng_states(state["rng"], dist.rank)
    return state


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   params: Iterable[torch.nn.Parameter], grad_clip: float) -> None:
    """One step: clear, backpropagate the (AMP-scaled) loss, clip the gradient norm when grad_clip > 0,
    step and update the scaler."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()
