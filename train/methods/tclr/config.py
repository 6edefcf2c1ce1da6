"""TCLR's config schema: `python -m train.tclr --config configs/tclr_*.yaml [key=value ...]`. Defaults are the
reference's (research/tclr_reference.md §1, §6): 16 frames at step 4, 4 dense clips, 112 px, batch 40, Adam
1e-3 with weight decay 1e-9, 5 warm-up epochs, plateau patience 9, tau 0.1."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...config import SHARED_CHOICES, PretrainData, RunSchema
from ...engine.errors import ConfigError
from ...losses.cooperative import GRANULARITIES, PENALTIES
from ...losses.tclr import LL_REDUCTIONS
from ...models.r3d import time_cells


@dataclass
class DataConfig(PretrainData):
    """Where TCLR cuts a video, in STORED frames (the paper's values at the source rate: a `--stride 1` store
    reproduces them); which videos train (data.train_split, data.holdout) as for every method."""

    views: list[str] = field(default_factory=lambda: ["rgb"])
    clip_frames: int = 16                # frames per clip (sparse and dense)
    sparse_step: int = 4                 # the sparse clip takes every sparse_step-th frame of the window
    local_clips: int = 4                 # dense clips tiling the window, one per time cell of the sparse clip
    crop_fraction: float = 1.0           # worker crop: the whole short side (the random resized crop is on the device)
    batch_size: int = 40


@dataclass
class ModelConfig:
    depth: int = 18                      # R3D-18 only
    width: float = 1.0                   # channel multiplier (1.0: 512-d backbone features)
    size: int = 112                      # input side of every view
    proj_dim: int = 128                  # projection head output


@dataclass
class LossConfig:
    temperature: float = 0.1
    ll_reduction: str = "sum"            # "sum": the reference (L_LL's weight grows with the batch); "mean"
    cooperative: bool = False            # several views: add L_sim and L_sync between their clip embeddings
    lambda_sim: float = 1.0
    lambda_sync: float = 1.0
    mu: float = 1.0                      # weight of L_sim's cross-instance hinge
    sync_penalty: str = "squared"
    granularity: str = "block"           # instances of L_sim/L_sync: "block" (each time cell) or "clip"


@dataclass
class OptimConfig:
    lr: float = 1.0e-3
    weight_decay: float = 1.0e-9
    warmup: list[float] = field(default_factory=lambda: [0.01, 0.05, 0.1, 0.5, 1.0])  # lr multipliers, epochs 1..5
    plateau_patience: int = 9            # epochs whose mean loss exceeds the best before lr /= 10
    plateau_factor: float = 0.1
    amp: bool = True                     # mixed precision, used on CUDA only
    grad_clip: float = 0.0               # 0: off


@dataclass
class TCLRConfig(RunSchema):
    """The config of `python -m train.tclr` (configs/tclr_*.yaml)."""

    name: str = "tclr"
    log_every: int = 10
    epochs: int = 100
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {
        **SHARED_CHOICES,
        "model.depth": (18,),
        "loss.ll_reduction": LL_REDUCTIONS,
        "loss.sync_penalty": PENALTIES,
        "loss.granularity": GRANULARITIES,
    }
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "epochs", "data.clip_frames", "data.sparse_step", "data.local_clips", "data.batch_size", "data.repeats",
        "model.width", "model.size", "model.proj_dim", "loss.temperature", "optim.lr", "optim.plateau_patience",
        "log_every"})

    def check(self) -> None:
        """Rules that tie several keys together (one-line ConfigError)."""
        d = self.data
        cells = time_cells(d.clip_frames)
        if d.local_clips != cells:
            raise ConfigError(f"config key data.local_clips ({d.local_clips}) must equal the time cells of a "
                              f"{d.clip_frames}-frame clip's map ({cells}): one dense clip per cell")
        if d.sparse_step % d.local_clips or d.clip_frames % d.local_clips:
            raise ConfigError(f"config key data.local_clips ({d.local_clips}) must divide data.sparse_step "
                              f"({d.sparse_step}) and data.clip_frames ({d.clip_frames})")
        if not d.views:
            raise ConfigError("config key data.views must name at least one view")
        if len(set(d.views)) != len(d.views):
            raise ConfigError(f"config key data.views repeats a view: {d.views}")
        if self.loss.cooperative and len(d.views) < 2:
            raise ConfigError("config key loss.cooperative needs at least two data.views")
        if not self.loss.cooperative and len(d.views) > 1:
            raise ConfigError("several data.views need loss.cooperative=true (or one view per run)")
        if not 0 < d.crop_fraction <= 1:
            raise ConfigError("config key data.crop_fraction must be in (0, 1]")
        d.check_holdout()
        if not self.optim.warmup or any(not 0 < m for m in self.optim.warmup):
            raise ConfigError("config key optim.warmup must list positive lr multipliers")
        if not 0 < self.optim.plateau_factor < 1:
            raise ConfigError("config key optim.plateau_factor must be in (0, 1)")
