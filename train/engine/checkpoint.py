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


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A training checkpoint with its `model` state, or a CheckpointMismatch naming what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointMismatch(f"checkpoint {path} does not exist")
    try:
        state = load_checkpoint(path, map_location)
    except Exception as exc:  # a truncated, empty or foreign file: torch raises many kinds
        detail = ' '.join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointMismatch(f"checkpoint {path} cannot be read (truncated or not a checkpoint?): "
                                 f"{detail}") from None
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


def model_difference(saved: dict[str, Any], model: dict[str, Any]) -> str:
    """What keeps a saved model state from loading into `model` (a state dict): missing and unexpected
    entries and the first shape that differs; "" when they fit."""
    missing = [k for k in model if k not in saved]
    unexpected = [k for k in saved if k not in model]
    shapes = [k for k in model if k in saved and tuple(saved[k].shape) != tuple(model[k].shape)]
    said = []
    if missing:
        said.append(f"{len(missing)} weight(s) of this run's model are not in it (e.g. {missing[0]})")
    if unexpected:
        said.append(f"it holds {len(unexpected)} weight(s) this run's model lacks (e.g. {unexpected[0]})")
    if shapes:
        k = shapes[0]
        said.append(f"{len(shapes)} weight(s) differ in shape (e.g. {k}: {tuple(saved[k].shape)} in the "
                    f"checkpoint, {tuple(model[k].shape)} here)")
    return "; ".join(said)


def config_difference(saved: Any, current: dict[str, Any], sections: tuple[str, ...] = ("model", "data")) -> str:
    """The `sections` keys whose values differ between a checkpoint's recorded config and this run's, as
    'key: saved -> now' (only keys both hold; "" when none or nothing was recorded)."""
    if not isinstance(saved, dict):
        return ""
    out = []
    for section in sections:
        old, new = saved.get(section), current.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            out += [f"{section}.{k}: {old[k]!r} -> {new[k]!r}" for k in new if k in old and old[k] != new[k]]
    return ", ".join(out)


def load_training_state(path: Path, dist: DistInfo, parts: dict[str, Any],
                        config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load each part's state_dict and this rank's RNG states (a run resumed on fewer ranks reuses the last
    one) from a save_training_state checkpoint; returns the checkpoint, for the rest of what it holds.

    A file that is not such a checkpoint (truncated, empty, foreign), or one whose model does not fit this
    run's (another width, depth or view list), is a one-line CheckpointMismatch naming the file and what
    differs (with `config`, this run's config as a dict, also the model/data keys that changed)."""
    state = read_checkpoint(path, map_location=dist.device)
    absent = [name for name in (*parts, "rng") if name not in state]
    if absent:
        raise CheckpointMismatch(f"checkpoint {path} lacks {', '.join(absent)}: not written by this training "
                                 f"engine; move it aside or set name=... for a new run")
    for name, part in parts.items():
        why = model_difference(state[name], part.state_dict()) if name == "model" else ""
        if not why:
            try:
                part.load_state_dict(state[name])
            except Exception as exc:  # noqa: BLE001 - optimiser/scheduler states raise ValueError, KeyError, ...
                why = f"its {name} state does not load: {' '.join(str(exc).split())[:200]}"
        if why:
            changed = config_difference(state.get("config"), config or {})
            raise CheckpointMismatch(f"cannot resume from {path}: {why}"
                                     + (f"; changed since: {changed}" if changed else
                                        "; was the run's model.width, model.depth or data.views changed?"))
    set_rng_state(state["rng"][min(dist.rank, len(state["rng"]) - 1)])
    return state
