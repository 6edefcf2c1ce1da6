"""Self-supervised methods, one folder each, and the registry that finds them by name.

How to add a method (say `simclr`), without touching the engine, fine-tuning or evaluation:

1. `train/losses/simclr.py`: the loss as a pure function (tensors in, loss and statistics out).
2. `train/methods/simclr/`: a config schema (a `train.config.RunSchema` dataclass with the keys the engine
   reads: data.batch_size/workers/loader/repeats, optim.lr/weight_decay/amp/grad_clip, log_every), and a class
   with the `protocol.Method` members: `schema`, `check_data`, `stages` (one `protocol.Stage` is fine),
   `job` (a `train.engine.job.Job`: build_model, inputs, losses, and checkpoint_extra recording
   `method="simclr"`, `views` and what rebuilds each view's encoder) and `encoder` (the `protocol.Encoder`
   that fine-tuning and evaluation use). Its `__init__.py` exposes that object as `METHOD`.
3. Register it below in METHODS, and add `train/simclr.py` with `exit_process(method_main("simclr"))`.

Checkpoints written before methods were recorded (no `method` key) are CoCon's.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..engine.checkpoint import read_checkpoint
from ..engine.errors import CheckpointMismatch
from .protocol import (PLACEMENTS, Downstream, Encoder, EncoderRequest, Method, Stage, TestClips, downstream,
                       resolve_clips, retrieval_feature)

# method name -> the module whose METHOD implements it
METHODS: dict[str, str] = {"cocon": "train.methods.cocon", "tclr": "train.methods.tclr"}
DEFAULT_METHOD = "cocon"   # what a checkpoint without a `method` key, or a random initialisation, uses


def get_method(name: str) -> Method:
    """The method registered as `name` (a CheckpointMismatch naming the known ones otherwise)."""
    if name not in METHODS:
        raise CheckpointMismatch(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return importlib.import_module(METHODS[name]).METHOD


def method_of(checkpoint: dict[str, Any]) -> Method:
    """The method that wrote a checkpoint."""
    return get_method(str(checkpoint.get("method", DEFAULT_METHOD)))


def load_encoder(path: str | Path | None, request: EncoderRequest) -> Encoder:
    """The encoder of `request.view` from the checkpoint at `path` (rebuilt by the method that wrote it), or
    the default method's randomly initialised one when `path` is empty."""
    if not path:
        return get_method(DEFAULT_METHOD).encoder(request, None, None)
    state = read_checkpoint(path)
    if "num_classes" in state and "views" not in state:   # what train.finetune writes: a classifier of one view
        raise CheckpointMismatch(f"{path} is a fine-tuning checkpoint (train.finetune, view {state.get('view')}); "
                                 f"give the checkpoint of a pre-training run (train.cocon, train.tclr)")
    return method_of(state).encoder(request, state, path)


def checkpoint_views(path: str | Path) -> list[str]:
    """The views a pre-training checkpoint holds."""
    state = read_checkpoint(path)
    if "views" not in state:
        raise CheckpointMismatch(f"{path} is not a checkpoint of a train.<method> pre-training run")
    return list(state["views"])


__all__ = ["METHODS", "DEFAULT_METHOD", "PLACEMENTS", "Downstream", "Encoder", "EncoderRequest", "Method", "Stage",
           "TestClips", "checkpoint_views", "downstream", "get_method", "load_encoder", "method_of", "resolve_clips",
           "retrieval_feature"]
