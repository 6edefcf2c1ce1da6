"""One view's CPC model from a CoCon checkpoint (to start the cocon stage, to fine-tune, to evaluate), with a
one-line error when it does not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.errors import CheckpointMismatch
from ...models import CPCModel
from ..protocol import EncoderRequest


def view_weights(state: dict[str, Any], view: str) -> dict[str, Any]:
    """The weights of one view's CPC model (keys `views.<view>.` of a CoCon checkpoint, prefix cut)."""
    prefix = f"views.{view}."
    return {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}


def load_view_weights(model: CPCModel, state: dict[str, Any], path: str | Path, view: str, depth: int,
                      width: float) -> None:
    """Load the `view` model of a CoCon checkpoint `state` (read from `path`) into `model`.

    Checked before any tensor is copied: it holds this view, and it was trained with this depth, width and
    number of input channels; otherwise a CheckpointMismatch names the difference."""
    views = list(state.get("views") or sorted({k.split(".")[1] for k in state["model"] if k.startswith("views.")}))
    if view not in views:
        raise CheckpointMismatch(f"checkpoint {path} holds the view(s) {', '.join(views) or 'none'}, not {view}")
    trained = (state.get("config") or {}).get("model", {})
    got = (trained.get("depth", depth), float(trained.get("width", width)))
    if got != (depth, float(width)):
        raise CheckpointMismatch(f"checkpoint {path} was trained with depth {got[0]} and width {got[1]:g}; this "
                                 f"config asks for depth {depth} and width {width:g} (set model.depth/model.width)")
    channels = (state.get("view_channels") or {}).get(view, model.in_channels)
    if channels != model.in_channels:
        raise CheckpointMismatch(f"checkpoint {path}: view {view} had {channels} input channels, the store's "
                                 f"{view} has {model.in_channels}")
    try:
        model.load_state_dict(view_weights(state, view))
    except RuntimeError as exc:
        raise CheckpointMismatch(f"{path} does not fit the {view} model of this config: "
                                 f"{str(exc).splitlines()[0]}") from None


def downstream_encoder(request: EncoderRequest, checkpoint: dict[str, Any] | None, path: str | Path | None
                       ) -> CPCModel:
    """The CPC model of one view for fine-tuning or evaluation (one prediction step; only f and g are used),
    loaded from `checkpoint` when given, with the context normalisation and BatchNorm kind it was trained with."""
    r = request
    trained = ((checkpoint or {}).get("config") or {}).get("model", {})
    model = CPCModel(r.channels, depth=r.depth, width=r.width, num_blocks=max(r.num_blocks, 2), pred_steps=1,
                     dropout=r.dropout, context_norm=trained.get("context_norm", "every_step"),
                     track_running_stats=trained.get("bn_running_stats", True))
    if checkpoint is not None:
        load_view_weights(model, checkpoint, path or "", r.view, r.depth, r.width)
    return model
