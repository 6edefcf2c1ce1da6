"""Configuration of `python -m train.evaluate`: the checkpoint, the store and split, and the analyses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .config import SHARED_CHOICES, ClipData, RunSchema
from .engine.errors import ConfigError
from .methods.protocol import PLACEMENTS


@dataclass
class EvalData(ClipData):
    views: list[str] = field(default_factory=list)     # []: every view the checkpoint holds
    split: str | None = "1"              # queries: <split>/test, gallery: <split>/train; None: stratified hold-out
    train_subset: str = "train"
    test_subset: str = "test"
    holdout: float = 0.3
    overlap: float = 0.5                 # "windows" placement: windows overlap by half a clip
    clips_per_video: int | None = None   # clips averaged per video (0: every window); None: the method's (CoCon 10,
                                         # TCLR 9)
    clip_placement: str | None = None    # "windows" (evenly chosen overlapping windows) | "even" (evenly spaced
                                         # starts, TCLR's); None: the method's


@dataclass
class EvalModel:
    depth: int = 18
    width: float = 1.0
    sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class EvalAnalysis:
    recall_ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    tsne_classes: int = 21               # the paper shows 21 classes of UCF101 split 1
    nearest_classes: int = 5             # the k nearest classes per class (paper: 5)
    consistency_min: int = 4             # a class is consistent when >= this many are shared by every view
    alignment_blocks: int = 18           # blocks per video in the soft alignment (paper: 18)
    alignment_pairs: int = 2             # video pairs aligned (same class when possible)
    alignment_sigma: float = 1.0         # Gaussian smoothing of the heat map, in blocks
    strip_queries: int = 5               # nearest-neighbour strips: queries shown
    strip_k: int = 5                     # neighbours per query


@dataclass
class EvalConfig(RunSchema):
    name: str = "evaluate"
    checkpoint: str = ""                 # a pre-training checkpoint (any method); "": random initialisation
    checkpoints: dict[str, str] = field(default_factory=dict)  # per view, overriding `checkpoint` (e.g. the
                                                               # cpc-<view> checkpoints, to compare with CPC)
    data: EvalData = field(default_factory=EvalData)
    model: EvalModel = field(default_factory=EvalModel)
    analysis: EvalAnalysis = field(default_factory=EvalAnalysis)

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {**SHARED_CHOICES, "data.clip_placement": (None, *PLACEMENTS)}
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "data.num_blocks", "data.block_frames", "data.batch_size", "analysis.tsne_classes",
        "analysis.nearest_classes", "analysis.alignment_blocks", "analysis.strip_k"})

    def checkpoint_for(self, view: str) -> str:
        """The checkpoint `view` is evaluated from ("" for random initialisation)."""
        return self.checkpoints.get(view, self.checkpoint)

    def check(self) -> None:
        d, a = self.data, self.analysis
        if not 0 < d.holdout < 1 or not 0 < d.crop_fraction <= 1 or not 0 <= d.overlap < 1:
            raise ConfigError("config keys data.holdout in (0, 1), data.crop_fraction in (0, 1], data.overlap in [0, 1)")
        if (d.clips_per_video or 0) < 0 or a.alignment_pairs < 0 or a.strip_queries < 0 or a.alignment_sigma < 0:
            raise ConfigError("config keys data.clips_per_video, analysis.alignment_pairs, analysis.strip_queries "
                              "and analysis.alignment_sigma must not be negative")
        if not a.recall_ks or min(a.recall_ks) < 1:
            raise ConfigError(f"config key analysis.recall_ks must list k >= 1; got {a.recall_ks}")
        if not 1 <= a.consistency_min <= a.nearest_classes:
            raise ConfigError(f"config key analysis.consistency_min must be in 1..analysis.nearest_classes "
                              f"({a.nearest_classes}); got {a.consistency_min}")
