"""CoCon's stages: `cpc-<view>` trains each view alone with L_cpc, then `cocon` trains all views together with
L_cocon, each view starting from its cpc checkpoint. A stage is an engine job: its clips, its per-view
augmentation and N x K block layout, its multi-view model and its loss step."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...data import MultiViewClips, ViewAugment, as_blocks, view_kind
from ...data.splits import holdout_videos
from ...engine.checkpoint import CHECKPOINT, read_checkpoint
from ...engine.distributed import DistInfo
from ...engine.errors import TrainingError
from ...engine.job import Job, LossTerms
from ..protocol import Stage
from .config import CoconConfig
from .encoder import load_view_weights
from .model import MultiViewModel, build_view_model
from .step import cocon_losses

METHOD_NAME = "cocon"


@dataclass
class CoconStage(Stage):
    """A stage of CoCon: its views, whether the cooperative losses join, and where each view starts from."""

    views: list[str] = field(default_factory=list)
    cooperative: bool = False
    init_from: dict[str, Path] = field(default_factory=dict)


def plan_stages(cfg: CoconConfig) -> list[CoconStage]:
    """The stages a config asks for, in order, with where each cocon view starts from."""
    views = list(dict.fromkeys(cfg.data.views))
    stages = []
    if cfg.schedule.stage in ("cpc", "both"):
        stages += [CoconStage(f"cpc-{v}", cfg.schedule.cpc_epochs, [v], cooperative=False) for v in views]
    if cfg.schedule.stage in ("cocon", "both"):
        init = {v: cfg.run_dir / f"cpc-{v}" / CHECKPOINT for v in views}
        stages.append(CoconStage("cocon", cfg.schedule.cocon_epochs, views, cooperative=True, init_from=init))
    return stages


def build_datasets(cfg: CoconConfig, views: list[str]) -> tuple[MultiViewClips, MultiViewClips]:
    """The training and validation clip sets of the config's splits, over `views`."""
    d = cfg.data
    common = dict(num_blocks=d.num_blocks, block_frames=d.block_frames, short=d.short_videos,
                  crop_fraction=d.crop_fraction, seed=cfg.seed, skip_failed=d.skip_failed)
    ids = holdout_videos(d.root, d.holdout, cfg.seed)
    if ids is not None:   # the training videos, also validated on: the test videos stay unseen
        return (MultiViewClips(d.root, views, train=True, video_ids=ids, **common),
                MultiViewClips(d.root, views, train=False, fraction=d.val_fraction, video_ids=ids, **common))
    train = MultiViewClips(d.root, views, d.train_split, d.train_subset if d.train_split is not None else None,
                           train=True, **common)
    val = MultiViewClips(d.root, views, d.val_split, d.val_subset if d.val_split is not None else None,
                         train=False, fraction=d.val_fraction, **common)
    return train, val


class CoconStageJob(Job):
    """The engine job of one CoCon stage."""

    def __init__(self, cfg: CoconConfig, stage: CoconStage, dist: DistInfo) -> None:
        self.cfg, self.stage, self.device = cfg, stage, dist.device
        self.name, self.title, self.epochs = stage.name, f"stage {stage.name}", stage.epochs
        self.dir = cfg.run_dir / stage.name
        self.train_set, self.val_set = build_datasets(cfg, stage.views)
        meta = self.train_set.store.view_meta
        self.channels = {v: int(meta[v]["channels"]) for v in stage.views}
        self.augment = {}
        for view in stage.views:
            size = cfg.model.sizes.get(view, int(meta[view]["size"]))   # default: the stored short side
            self.augment[view] = {
                split: ViewAugment(view_kind(meta[view]), size, train=split == "train", grey_p=cfg.augment.grey_p,
                                   jitter=tuple(cfg.augment.jitter)).to(self.device)
                for split in ("train", "val")}

    def build_model(self) -> MultiViewModel:
        model = MultiViewModel({v: build_view_model(self.cfg.model, self.cfg.data.num_blocks, self.channels[v])
                                for v in self.stage.views})
        for view, path in self.stage.init_from.items():
            if not path.is_file():
                raise TrainingError(f"stage {self.stage.name} starts {view} from {path}, which does not exist: "
                                    f"run stage cpc first (schedule.stage=cpc or both)")
            m = self.cfg.model
            load_view_weights(model.views[view], read_checkpoint(path), path, view, m.depth, m.width)
        loss = self.cfg.loss
        if self.stage.cooperative and loss.teacher and loss.freeze_teacher:
            # A target that holds still: no L_cpc either, so the optimiser (and DDP) leave its weights alone.
            model.views[loss.teacher].requires_grad_(False)
        return model

    def inputs(self, batch: dict[str, Any], split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        n = self.cfg.data.num_blocks
        return {v: as_blocks(self.augment[v][split](batch[v].to(self.device, non_blocking=True), generator), n)
                for v in self.stage.views}

    def losses(self, outputs: dict[str, Any], batch: dict[str, Any], offset: int) -> LossTerms:
        return cocon_losses(self.cfg.loss, outputs, self.stage.cooperative, offset)

    def checkpoint_extra(self, model: MultiViewModel) -> dict[str, Any]:
        m = self.cfg.model
        return {"method": METHOD_NAME, "views": self.stage.views, "config": self.cfg.to_dict(),
                "view_channels": {v: model.views[v].in_channels for v in self.stage.views},
                "encoders": {v: {"kind": "cpc_resnet2d3d", "depth": m.depth, "width": m.width,
                                 "channels": model.views[v].in_channels} for v in self.stage.views}}
