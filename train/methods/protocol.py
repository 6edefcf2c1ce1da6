"""What a self-supervised method declares, for pre-training (the engine) and for every downstream command
(fine-tuning, evaluation), which never name a method: they ask `train.methods` for the method that wrote a
checkpoint and get an `Encoder` back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor, nn

from ..data.sampling import PLACEMENTS
from ..engine.distributed import DistInfo
from ..engine.errors import ConfigError
from ..engine.job import Job


@dataclass
class Stage:
    """One stage of a method's pre-training: its name (the folder under the run) and its epochs. A method with
    several stages (CoCon: cpc per view, then cocon) subclasses it with what its jobs need."""

    name: str
    epochs: int


@dataclass
class EncoderRequest:
    """The encoder a downstream command asks for: one view with its input channels, and the settings of the
    command's config (checked against the checkpoint's; used as they are for a random initialisation)."""

    view: str
    channels: int
    depth: int = 18
    width: float = 1.0
    num_blocks: int = 8                  # blocks per clip the encoder will see ("blocks" layout only)
    dropout: float = 0.1                 # recurrent dropout (CoCon's ConvGRU)




@dataclass(frozen=True)
class TestClips:
    """How a test protocol cuts a video into clips (`train.data.DenseClips`): placement "windows", the
    toolkit's windows overlapping by the command's overlap, `count` of them evenly chosen (0: all); placement
    "even", `count` clips whose starts are evenly spaced from the first frame to the last start (TCLR)."""

    count: int
    placement: str = "windows"


@dataclass(frozen=True)
class Downstream:
    """What a method's own downstream protocols fix (each overridable by the command's config): the clips of a
    retrieval feature and of a classification test, how the report names the retrieval feature, and whether rgb
    inputs get ImageNet's mean/std (False: values in [0, 1]). The defaults are CoCon's."""

    retrieval: TestClips = field(default_factory=lambda: TestClips(10))
    classification: TestClips = field(default_factory=lambda: TestClips(0))
    feature: str = "F = g(f(.)) spatially pooled"
    normalise: bool = True


class Encoder(Protocol):
    """One view's pre-trained network as downstream commands use it (an nn.Module).

    `input_layout` names the clip shape it takes (`train.data.layout`): "blocks" (B, N, C, K, H, W) or "clip"
    (B, C, T, H, W); `clip_feature` gives one vector per clip (B, D) for classification; `block_features` one
    L2-normalised vector per block or time cell (B, N, D), for the alignment analysis. Optional members, read
    through `retrieval_feature` and `downstream` below: `retrieval_feature(x)` (B, D') for retrieval (default:
    `clip_feature`) and `downstream`, a `Downstream` (default: CoCon's)."""

    input_layout: str
    out_dim: int
    in_channels: int

    def clip_feature(self, x: Tensor) -> Tensor: ...

    def block_features(self, x: Tensor) -> Tensor: ...

    def freeze_unused(self) -> None:
        """Stop gradients into parts a downstream classifier does not use (kept so checkpoints load strictly)."""


def retrieval_feature(encoder: Encoder, x: Tensor) -> Tensor:
    """The encoder's retrieval feature of clips `x` (B, D'): its own `retrieval_feature`, else its clip feature."""
    own = getattr(encoder, "retrieval_feature", None)
    return own(x) if own is not None else encoder.clip_feature(x)


def downstream(encoder: Encoder) -> Downstream:
    """The encoder's downstream protocol defaults (CoCon's when it declares none)."""
    return getattr(encoder, "downstream", None) or Downstream()


def resolve_clips(default: TestClips, count: int | None, placement: str | None, key: str) -> TestClips:
    """The method's `default` clips with a command's config overrides (None keeps the default); `key` names the
    count's config key in the error an even placement without a count raises."""
    chosen = TestClips(default.count if count is None else count, placement or default.placement)
    if chosen.placement == "even" and chosen.count < 1:
        raise ConfigError(f"evenly placed test clips need a count: set {key} to 1 or more")
    return chosen


class Method(Protocol):
    """A self-supervised method: its config schema, its stages, the engine job of each stage, and how it
    rebuilds one view's encoder from a checkpoint it wrote (the checkpoint's `method` key names it)."""

    name: str
    schema: type

    def check_data(self, cfg: Any) -> None:
        """Stop before any training when the store cannot serve the config (one line)."""

    def stages(self, cfg: Any) -> list[Stage]:
        """The stages the config asks for, in order."""

    def job(self, cfg: Any, stage: Stage, dist: DistInfo) -> Job:
        """The engine job that trains `stage` (its checkpoint_extra must record `method` and `views`)."""

    def encoder(self, request: EncoderRequest, checkpoint: dict[str, Any] | None, path: str | Path | None
                ) -> nn.Module:
        """The Encoder of `request.view`: from `checkpoint` (read from `path`) when given, else randomly
        initialised; a CheckpointMismatch when the checkpoint does not fit the request."""
