"""TCLR's single stage as an engine job: TCLRClips from the store, each clip augmented twice on the device
(one draw per clip), one R3D-18 + head per view, the loss step of `step.py`, the warm-up/plateau schedule."""

from __future__ import annotations

from typing import Any

import torch

from ...data import view_kind
from ...data.clip_augment import ClipAugment
from ...data.splits import holdout_videos
from ...data.tclr_clips import TCLRClips, TCLRClipSpec, split_sparse_dense
from ...engine.distributed import DistInfo
from ...engine.job import Job, LossTerms
from ...models.r3d import TCLRModel
from .config import TCLRConfig
from .model import TCLRInputs, TCLRViews
from .schedule import WarmupThenPlateau
from .step import tclr_losses

METHOD_NAME = "tclr"
STAGE = "tclr"
ENCODER_KIND = "r3d18"


def clip_spec(cfg: TCLRConfig) -> TCLRClipSpec:
    d = cfg.data
    return TCLRClipSpec(d.clip_frames, d.sparse_step, d.local_clips)


def build_dataset(cfg: TCLRConfig) -> TCLRClips:
    """The training videos of the config: a split's subset, every video of the store, or with data.holdout every
    video but the downstream commands' test videos."""
    d = cfg.data
    return TCLRClips(d.root, list(d.views), clip_spec(cfg), d.train_split,
                     d.train_subset if d.train_split is not None else None, short=d.short_videos, train=True,
                     crop_fraction=d.crop_fraction, seed=cfg.seed, skip_failed=d.skip_failed,
                     video_ids=holdout_videos(d.root, d.holdout, cfg.seed))


def two_copies(augment: ClipAugment, clips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Clips (N, F, H, W, C) uint8 -> (N·2, C, F, s, s): two independent augmentations of each clip, side by side."""
    first, second = augment(clips, generator), augment(clips, generator)
    return torch.stack([first, second], dim=1).flatten(0, 1)


class TCLRJob(Job):
    """The engine job of TCLR pre-training (no validation set: the schedule follows the training loss, as the
    reference's does)."""

    def __init__(self, cfg: TCLRConfig, dist: DistInfo) -> None:
        self.cfg, self.device = cfg, dist.device
        self.name, self.title, self.epochs = STAGE, f"stage {STAGE}", cfg.epochs
        self.dir = cfg.run_dir / STAGE
        self.spec = clip_spec(cfg)
        self.train_set = build_dataset(cfg)
        self.val_set = None
        meta = self.train_set.store.view_meta
        self.channels = {v: int(meta[v]["channels"]) for v in cfg.data.views}
        self.augment = {v: ClipAugment(view_kind(meta[v]), cfg.model.size, train=True).to(self.device)
                        for v in cfg.data.views}

    def build_model(self) -> TCLRViews:
        m = self.cfg.model
        return TCLRViews({v: TCLRModel(self.channels[v], m.width, m.proj_dim) for v in self.cfg.data.views})

    def inputs(self, batch: dict[str, Any], split: str, generator: torch.Generator) -> dict[str, TCLRInputs]:
        out = {}
        for view in self.cfg.data.views:
            sparse, dense = split_sparse_dense(batch[view].to(self.device, non_blocking=True), self.spec)
            b, lc = sparse.shape[0], self.spec.local_clips
            dense2 = two_copies(self.augment[view], dense, generator)          # (B·L·2, ...): video, clip, copy
            dense2 = dense2.view(b, lc, 2, *dense2.shape[1:]).transpose(1, 2).flatten(0, 2)  # video, copy, clip
            out[view] = TCLRInputs(two_copies(self.augment[view], sparse, generator), dense2)
        return out

    def losses(self, outputs: dict[str, Any], batch: dict[str, Any], offset: int) -> LossTerms:
        return tclr_losses(self.cfg.loss, outputs, offset)

    def schedule(self, optimizer: torch.optim.Optimizer) -> WarmupThenPlateau:
        o = self.cfg.optim
        return WarmupThenPlateau(optimizer, o.lr, o.warmup, o.plateau_patience, o.plateau_factor)

    def checkpoint_extra(self, model: TCLRViews) -> dict[str, Any]:
        views = list(self.cfg.data.views)
        return {"method": METHOD_NAME, "views": views, "config": self.cfg.to_dict(),
                "view_channels": {v: self.channels[v] for v in views},
                "encoders": {v: {"kind": ENCODER_KIND, "depth": 18, "width": self.cfg.model.width,
                                 "channels": self.channels[v]} for v in views}}
