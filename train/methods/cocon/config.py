"""CoCon's config schema: `python -m train.cocon --config configs/cocon_*.yaml [key=value ...]`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...config import SHARED_CHOICES, BlockClips, PretrainData, RunSchema
from ...engine.errors import ConfigError
from ...losses.cooperative import GRANULARITIES, PENALTIES, SIM_SCALES, SYNC_FORMS
from ...models.cpc import CONTEXT_NORMS, PREDICTOR_INITS
from .presets import PRESETS, apply_preset

SCHEDULE_STAGES = ("cpc", "cocon", "both")   # each view alone; all views together; cpc then cocon
CONTEXT = "context"   # loss.granularity: one instance per clip, its aggregated context g(f) of the context blocks


@dataclass
class DataConfig(BlockClips, PretrainData):
    views: list[str] = field(default_factory=lambda: ["rgb", "flow_tvl1"])
    val_split: str | None = None         # None: the training videos, evaluated with centred windows
    val_subset: str = "test"
    val_fraction: float = 1.0            # DPC/CoCon validate on 30% of the test split: 0.3

    def split_keys(self) -> dict[str, str | None]:
        return {**super().split_keys(), "data.val_split": self.val_split}


@dataclass
class ModelConfig:
    depth: int = 18                      # 18 or 34
    width: float = 1.0                   # channel multiplier (1.0: 256-d features)
    pred_steps: int = 3                  # predict the last P blocks from the first N-P
    dropout: float = 0.1                 # ConvGRU hidden-state dropout
    sizes: dict[str, int] = field(default_factory=dict)   # input size per view; default: its stored short side
    context_norm: str = "every_step"     # L2 of the ConvGRU state after every context step; "once": after the last
    predictor_init: str = "default"      # PyTorch's; "orthogonal" (CoCon), "orthogonal_zero_bias" (DPC)
    bn_running_stats: bool = True        # false: BatchNorm uses batch statistics also in eval mode (DPC)


@dataclass
class LossConfig:
    temperature: float = 0.07
    temperature_twice: bool = False      # true: logits cos/tau^2, as CoCon's code divides both sides by tau
    lambda_sim: float = 1.0
    lambda_sync: float = 1.0
    mu: float = 1.0                      # weight of L_sim's cross-instance hinge
    sync_penalty: str = "squared"        # "squared" (paper) or "l1" (the authors' code); relational L_sync only
    sync_form: str = "relational"        # L_sync: "relational" (paper) or "standardised" (per-dim z-scores match)
    granularity: str = "block"           # instances of L_sim/L_sync: "block" (clip x block), "clip" or "context"
    sim_scale: str = "paper"             # "authors": L_sim halved, as CoCon's weighted hinge (their 10 = our 5)
    pool_pad_odd: bool = False           # pooling for L_sim/L_sync pads an odd cell map (CoCon at 224 px)
    teacher: str = ""                    # a view whose features L_sim/L_sync do not train (gradients stopped)
    freeze_teacher: bool = False         # true: the teacher keeps its cpc-stage weights in the cooperative stage


@dataclass
class OptimConfig:
    lr: float = 1.0e-3
    weight_decay: float = 1.0e-5
    min_lr: float = 1.0e-4               # reduce-on-plateau floor (paper: 1e-3 -> 1e-4)
    plateau_factor: float = 0.1
    plateau_patience: int = 5
    amp: bool = True                     # mixed precision, used on CUDA only
    grad_clip: float = 0.0               # 0: off


@dataclass
class AugmentConfig:
    grey_p: float = 0.5                  # per-frame random grey (RGB)
    jitter: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5, 0.25])  # brightness, contrast, saturation, hue


@dataclass
class ScheduleConfig:
    stage: str = "both"                  # "cpc": each view alone; "cocon": all views; "both": cpc then cocon
    cpc_epochs: int = 100
    cocon_epochs: int = 60


@dataclass
class CoconConfig(RunSchema):
    """The config of `python -m train.cocon` (configs/cocon_*.yaml)."""

    name: str = "run"
    preset: str = ""                     # "authors-code": every setting of the authors' code (presets.py)
    log_every: int = 10                  # TensorBoard scalars every N steps
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {
        **SHARED_CHOICES,
        "loss.sync_penalty": PENALTIES,
        "loss.sync_form": SYNC_FORMS,
        "loss.granularity": (*GRANULARITIES, CONTEXT),
        "loss.sim_scale": tuple(SIM_SCALES),
        "model.context_norm": CONTEXT_NORMS,
        "model.predictor_init": PREDICTOR_INITS,
        "preset": ("", *PRESETS),
        "schedule.stage": SCHEDULE_STAGES,
    }
    POSITIVE: ClassVar[frozenset[str]] = frozenset({
        "data.num_blocks", "data.block_frames", "data.batch_size", "data.repeats", "model.pred_steps",
        "loss.temperature", "optim.lr", "log_every"})

    def check(self) -> None:
        """Rules that tie several keys together (one-line ConfigError), after the preset has set its keys."""
        apply_preset(self)
        if self.model.pred_steps >= self.data.num_blocks:
            raise ConfigError(f"model.pred_steps ({self.model.pred_steps}) must be smaller than data.num_blocks "
                              f"({self.data.num_blocks}): some blocks must be context")
        if not 0 < self.data.val_fraction <= 1 or not 0 < self.data.crop_fraction <= 1:
            raise ConfigError("config keys data.val_fraction and data.crop_fraction must be in (0, 1]")
        self.data.check_holdout()
        if not self.data.views:
            raise ConfigError("config key data.views must name at least one view")
        if len(self.augment.jitter) != 4:
            raise ConfigError("config key augment.jitter must be [brightness, contrast, saturation, hue]")
        if self.loss.teacher and self.loss.teacher not in self.data.views:
            raise ConfigError(f"config key loss.teacher must be one of data.views {self.data.views} or empty; "
                              f"got {self.loss.teacher!r}")
        if self.loss.freeze_teacher and not self.loss.teacher:
            raise ConfigError("config key loss.freeze_teacher needs loss.teacher: the view to freeze")
