"""Start one view's network from a `train.cocon` checkpoint, with a one-line error when it does not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from preprocess.errors import UserError

from .checkpoint import load_checkpoint


class CheckpointMismatch(UserError):
    """A checkpoint that is missing, lacks the view, or was trained with another depth, width or view."""


def view_weights(state: dict[str, Any], view: str) -> dict[str, Any]:
    """The weights of one view's CPC model (keys `views.<view>.` of a train.cocon checkpoint, prefix cut)."""
    prefix = f"views.{view}."
    return {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}


def load_view_model(model: nn.Module, path: str | Path, view: str, depth: int, width: float,
                    in_channels: int) -> dict[str, Any]:
    """Load the `view` model of the checkpoint at `path` into `model` (a CPCModel) and return the checkpoint.

    Checked before any tensor is copied: the file exists, it holds this view, and it was trained with this
    depth, width and number of input channels; otherwise a CheckpointMismatch names the difference.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointMismatch(f"checkpoint {path} does not exist")
    try:
        state = load_checkpoint(path)
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise CheckpointMismatch(f"checkpoint {path} cannot be read: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointMismatch(f"{path} is not a checkpoint of python -m train.cocon")
    views = list(state.get("views") or sorted({k.split(".")[1] for k in state["model"] if k.startswith("views.")}))
    if view not in views:
        raise CheckpointMismatch(f"checkpoint {path} holds the view(s) {', '.join(views) or 'none'}, not {view}")
    trained = (state.get("config") or {}).get("model", {})
    got = (trained.get("depth", depth), float(trained.get("width", width)))
    if got != (depth, float(width)):
        raise CheckpointMismatch(f"checkpoint {path} was trained with depth {got[0]} and width {got[1]:g}; this "
                                 f"config asks for depth {depth} and width {width:g} (set model.depth/model.width)")
    channels = (state.get("view_channels") or {}).get(view, in_channels)
    if channels != in_channels:
        raise CheckpointMismatch(f"checkpoint {path}: view {view} had {channels} input channels, the store's "
                                 f"{view} has {in_channels}")
    try:
        model.load_state_dict(view_weights(state, view))
    except RuntimeError as exc:
        raise CheckpointMismatch(f"{path} does not fit the {view} model of this config: "
                                 f"{str(exc).splitlines()[0]}") from None
    return state
