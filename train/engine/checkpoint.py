"""Checkpoints: everything a run needs to continue exactly (state dicts, every rank's RNG states, counters),
written atomically each epoch; and reading one back with a one-line error when it is not ours."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .distributed import DistInfo, barrier, gather_objects
from .errors import CheckpointMismatch

CHECKPOINT = "checkpoint.pth"   # a job's checkpoint, in its folder


def rng_state() -> dict[str, Any]:
    """Every random number generator a training step draws from."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file, then rename: a kill leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint this toolkit wrote (it holds RNG states and numpy arrays: weights_only=False)."""
    return torch.load(path, map_location=map_location, weights_only=False)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint with its `model` state, or a CheckpointMismatch naming what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointMismatch(f"checkpoint {path} does not exist")
    try:
        state = load_checkpoint(path)
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise CheckpointMismatch(f"checkpoint {path} cannot be read: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointMismatch(f"{path} is not a checkpoint of a train.<method> pre-training run")
    return state


def save_training_state(path: Path, dist: DistInfo, parts: dict[str, Any], **extra: Any) -> None:
    """Rank 0 writes each part's state_dict (model, optimizer, scheduler, scaler), every rank's RNG states
    and `extra` atomically; every rank waits for it (a collective)."""
    rngs = gather_objects(rng_state())
    if dist.is_main:
        save_checkpoint(path, {**{name: part.state_dict() for name, part in parts.items()}, "rng": rngs, **extra})
    barrier()


def load_training_state(path: Path, dist: DistInfo, parts: dict[str, Any]) -> dict[str, Any]:
    """Load each part's state_dict and this rank's RNG states (a run resumed on fewer ranks reuses the last
    one) from a save_training_state checkpoint; returns the checkpoint, for the rest of what it holds."""
    state = load_checkpoint(path, map_location=dist.device)
    for name, part in parts.items():
        part.load_state_dict(state[name])
    set_rng_state(state["rng"][min(dist.rank, len(state["rng"]) - 1)])
    return state
