"""Configuration of `python -m train.finetune`: which views, splits and label fractions to fine-tune (or
linear-probe), from which checkpoint, and how. Same loader and override rules as the pre-training config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .config import SHARED_CHOICES, ClipData, RunSchema
from .engine.errors import ConfigError
from .methods.protocol import PLACEMENTS

# CoCon's ensemble weights (COCON:test/test.py): rgb 2, flow 2, seg 1, pose (keypoint heatmaps) 1, by view kind.
DEFAULT_ENSEMBLE_WEIGHTS: dict[str, float] = {"rgb": 2.0, "flow": 2.0, "seg": 1.0, "pose": 1.0}


@dataclass
class FinetuneData(ClipData):
    views: list[str] = field(default_factory=lambda: ["rgb"])
    splits: list[str] = field(default_factory=lambda: ["1", "2", "3"])  # []: a stratified hold-out (no split files)
    train_subset: str = "train"
    test_subset: str = "test"
    holdout: float = 0.3                 # with splits: [], this fraction of each class's videos tests
    label_fractions: list[float] = field(default_factory=lambda: [1.0])  # limited labels: [0.01, 0.1, 0.2, 0.5]
    repeats: int = 1                     # passes over the training videos per epoch (small sets)
    test_overlap: float = 0.5            # "windows" test placement: windows overlap by half a clip (DPC/CoCon)
    test_clips: int | None = None        # test clips per video (0: every window); None: the method's (CoCon 0, TCLR 10)
    test_placement: str | None = None    # "windows" | "even" (evenly spaced starts, TCLR's); None: the method's
    test_batch_size: int = 0             # windows per test batch; 0: data.batch_size


@dataclass
class FinetuneModel:
    depth: int = 18
    width: float = 1.0
    sizes: dict[str, int] = field(default_factory=dict)  # input size per view; default: its stored short side
    dropout: float = 0.7                 # before the linear layer (CoCon A.4)
    gru_dropout: float = 0.1
    init: str = ""                       # a pre-training checkpoint (any method) holding the views; "": random init
    init_views: dict[str, str] = field(default_factory=dict)  # per-view checkpoint, overriding `init`
    linear_probe: bool = False           # freeze f and g (eval mode), train only BatchNorm + linear head
    precise_bn_batches: int = 200        # before testing, BatchNorm statistics re-estimated over this many
                                         # training batches of the final weights (0: keep the running averages)


@dataclass
class FinetuneOptim:
    lr: float = 1.0e-3
    weight_decay: float = 1.0e-5         # CoCon (DPC: 1e-3)
    milestones: list[int] = field(default_factory=lambda: [50, 70, 90])  # epochs where lr is multiplied by gamma
    gamma: float = 0.1
    amp: bool = True
    grad_clip: float = 0.0


@dataclass
class FinetuneAugment:
    grey_p: float = 0.0
    jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.05])


@dataclass
class FinetuneConfig(RunSchema):
    name: str = "finetune"
    log_every: int = 10
    epochs: int = 100
    ensemble_weights: dict[str, float] = field(default_factory=dict)  # by view name or kind; default CoCon's
    data: FinetuneData = field(default_factory=FinetuneData)
    model: FinetuneModel = field(default_factory=FinetuneModel)
    optim: FinetuneOptim = field(default_factory=FinetuneOptim)
    augment: FinetuneAugment = field(default_factory=FinetuneAugment)

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {**SHARED_CHOICES, "data.test_placement": (None, *PLACEMENTS)}
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "data.num_blocks", "data.block_frames", "data.batch_size", "data.repeats", "epochs", "optim.lr",
        "log_every"})

    def check(self) -> None:
        d = self.data
        if not d.views:
            raise ConfigError("config key data.views must name at least one view")
        if len(set(d.views)) != len(d.views) or len(set(d.splits)) != len(d.splits):
            raise ConfigError("config keys data.views and data.splits must not repeat")
        if not d.label_fractions or any(not 0 < f <= 1 for f in d.label_fractions):
            raise ConfigError(f"config key data.label_fractions must list fractions in (0, 1]; got {d.label_fractions}")
        if not 0 < d.holdout < 1 or not 0 < d.crop_fraction <= 1 or not 0 <= d.test_overlap < 1:
            raise ConfigError("config keys data.holdout in (0, 1), data.crop_fraction in (0, 1], "
                              "data.test_overlap in [0, 1)")
        if (d.test_clips or 0) < 0:
            raise ConfigError(f"config key data.test_clips must not be negative; got {d.test_clips}")
        if not 0 <= self.model.dropout < 1:
            raise ConfigError(f"config key model.dropout must be in [0, 1); got {self.model.dropout}")
        if len(self.augment.jitter) != 4:
            raise ConfigError("config key augment.jitter must be [brightness, contrast, saturation, hue]")
        if any(w < 0 for w in self.ensemble_weights.values()):
            raise ConfigError("config key ensemble_weights must not be negative")

    def init_for(self, view: str) -> str:
        """The checkpoint `view` starts from ("" for random initialisation)."""
        return self.model.init_views.get(view, self.model.init)

    def ensemble_weight(self, view: str, kind: str) -> float:
        """A view's ensemble weight: by its name, else by its kind, else CoCon's default for the kind (else 1)."""
        for key in (view, kind):
            if key in self.ensemble_weights:
                return float(self.ensemble_weights[key])
        return DEFAULT_ENSEMBLE_WEIGHTS.get(kind, 1.0)
