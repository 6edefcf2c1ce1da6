"""TCLR (temporal contrastive learning, seeds/002_*): L_IC, L_LL and L_GL over an R3D-18 whose last stage keeps
time, alone or, with `loss.cooperative`, per view plus CoCon's L_sim and L_sync between the views. Its parts:
`config` (the schema), `job` (the one stage: data, augmentation, model, loss), `model`, `step`, `schedule`.
The losses themselves: `train.losses.tclr`; the network: `train.models.r3d`; the sampling:
`train.data.tclr_clips`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.distributed import DistInfo
from ...engine.errors import CheckpointMismatch
from ..protocol import EncoderRequest, Stage
from .config import TCLRConfig
from .job import ENCODER_KIND, METHOD_NAME, STAGE, TCLRJob, build_dataset
from .model import TCLREncoder, random_encoder


def load_backbone(request: EncoderRequest, checkpoint: dict[str, Any], path: str | Path | None) -> TCLREncoder:
    """One view's R3D-18 from a TCLR checkpoint, checked against the request before any tensor is copied."""
    views = list(checkpoint.get("views", []))
    if request.view not in views:
        raise CheckpointMismatch(f"checkpoint {path} holds the view(s) {', '.join(views) or 'none'}, not {request.view}")
    info = checkpoint.get("encoders", {}).get(request.view, {})
    width, channels = float(info.get("width", request.width)), int(info.get("channels", request.channels))
    if request.depth != 18:
        raise CheckpointMismatch(f"checkpoint {path} is a TCLR R3D-18; this config asks for depth {request.depth} "
                                 f"(set model.depth=18)")
    if width != float(request.width):
        raise CheckpointMismatch(f"checkpoint {path} was trained with width {width:g}; this config asks for width "
                                 f"{request.width:g} (set model.width)")
    if channels != request.channels:
        raise CheckpointMismatch(f"checkpoint {path}: view {request.view} had {channels} input channels, the "
                                 f"store's {request.view} has {request.channels}")
    encoder = random_encoder(request.channels, request.width)
    prefix = f"views.{request.view}.backbone."
    encoder.backbone.load_state_dict({k[len(prefix):]: v for k, v in checkpoint["model"].items()
                                      if k.startswith(prefix)})
    return encoder


class TCLR:
    """The TCLR method (`train.methods.Method`)."""

    name = METHOD_NAME
    schema = TCLRConfig

    def check_data(self, cfg: TCLRConfig) -> None:
        """Build the training set once, so that a missing view or video stops the run before any training."""
        build_dataset(cfg)

    def stages(self, cfg: TCLRConfig) -> list[Stage]:
        return [Stage(STAGE, cfg.epochs)]

    def job(self, cfg: TCLRConfig, stage: Stage, dist: DistInfo) -> TCLRJob:
        return TCLRJob(cfg, dist)

    def encoder(self, request: EncoderRequest, checkpoint: dict[str, Any] | None, path: str | Path | None
                ) -> TCLREncoder:
        if checkpoint is None:
            return random_encoder(request.channels, request.width)
        return load_backbone(request, checkpoint, path)


METHOD = TCLR()

__all__ = ["ENCODER_KIND", "METHOD", "TCLR", "TCLRConfig", "TCLRJob"]
