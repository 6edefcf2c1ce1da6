"""CoCon (cooperative cross-view contrastive learning): CPC on each view alone, then all views together with
L_sim and L_sync. Its parts: `config` (the schema), `stages` (the stages as engine jobs: data, augmentation,
N x K blocks), `model` (one CPC model per view), `step` (the loss of a batch), `encoder` (one view's model
from a checkpoint, for the cocon stage and downstream). The losses themselves: `train.losses`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...engine.distributed import DistInfo
from ..protocol import EncoderRequest
from .config import CoconConfig
from .encoder import downstream_encoder
from .stages import METHOD_NAME, CoconStage, CoconStageJob, build_datasets, plan_stages


class Cocon:
    """The CoCon method (`train.methods.Method`)."""

    name = METHOD_NAME
    schema = CoconConfig

    def check_data(self, cfg: CoconConfig) -> None:
        """Build the train and validation sets over all views once, so that a missing view, a video missing
        from a view or an empty split stops the run before any training (one line, with the ids)."""
        build_datasets(cfg, list(dict.fromkeys(cfg.data.views)))

    def stages(self, cfg: CoconConfig) -> list[CoconStage]:
        return plan_stages(cfg)

    def job(self, cfg: CoconConfig, stage: CoconStage, dist: DistInfo) -> CoconStageJob:
        return CoconStageJob(cfg, stage, dist)

    def encoder(self, request: EncoderRequest, checkpoint: dict[str, Any] | None, path: str | Path | None) -> Any:
        return downstream_encoder(request, checkpoint, path)


METHOD = Cocon()

__all__ = ["METHOD", "Cocon", "CoconConfig", "CoconStage", "CoconStageJob", "build_datasets", "plan_stages"]
