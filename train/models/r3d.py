"""TCLR's network (research/tclr_reference.md §4): an R3D-18 whose last stage keeps time, and the projection
head applied to the time-pooled clip feature and to each time step of a sparse clip's map.

R3D-18 = torchvision's VideoResNet layout: a (3, 7, 7) stem without max-pool, four stages of two BasicBlocks
(3x3x3 convs), widths 64/128/256/512 and strides 1/2/2/2 in time and space. TCLR changes layer4's first block
to stride (1, 2, 2) with temporal dilation 2 (its shortcut too), so a 16-frame 112 px clip ends in a
(512, 4) map once space is averaged. Built from small builders (stem, block, stage, head), PyTorchVideo-style.
No autocast inside: mixed precision is the caller's choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Triple = tuple[int, int, int]
R3D18_BLOCKS = (2, 2, 2, 2)
PROJECTION_DIM = 128


def create_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv3d (3, 7, 7), stride (1, 2, 2), then BatchNorm and ReLU: halves space, keeps time."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """Two 3x3x3 conv-BN layers plus a shortcut (a strided 1x1x1 conv-BN when shape changes), then ReLU.
    The first conv carries the block's stride and temporal dilation."""

    def __init__(self, in_channels: int, out_channels: int, stride: Triple = (1, 1, 1),
                 temporal_dilation: int = 1) -> None:
        super().__init__()
        d = temporal_dilation
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=(d, 1, 1),
                               dilation=(d, 1, 1), bias=False)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != (1, 1, 1) or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm3d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        """relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut x)."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def create_res_stage(in_channels: int, out_channels: int, depth: int, stride: Triple,
                     temporal_dilation: int = 1) -> nn.Sequential:
    """`depth` BasicBlocks; the first one strides, changes width and dilates time."""
    return nn.Sequential(*[BasicBlock(in_channels if i == 0 else out_channels, out_channels,
                                      stride if i == 0 else (1, 1, 1), temporal_dilation if i == 0 else 1)
                           for i in range(depth)])


class R3D(nn.Module):
    """Stem and four stages; (B, C, T, H, W) -> (B, out_dim, T / 4): space averaged, time kept."""

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], out_dim: int) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.out_dim = out_dim
        for m in self.modules():
            if isinstance(m, nn.Conv3d):  # every conv, the two dilated ones included (the reference's bug 6)
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def in_channels(self) -> int:
        return int(self.stem[0].in_channels)

    def feature_map(self, x: Tensor) -> Tensor:
        """The last stage's output (B, out_dim, T', H', W')."""
        return self.stages(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        """The time-kept, space-averaged map (B, out_dim, T')."""
        return self.feature_map(x).mean(dim=(-2, -1))


def time_cells(frames: int) -> int:
    """Time steps of the map R3D-18 gives for a clip of `frames` frames: layer2 and layer3 halve time
    (kernel 3, padding 1, stride 2: ceil(T / 2) each), layer4 keeps it; 16 frames -> 4."""
    for _ in range(2):
        frames = (frames + 1) // 2
    return frames


def r3d18(in_channels: int = 3, width: float = 1.0) -> R3D:
    """TCLR's R3D-18 (layer4 keeps time); `width` scales every stage (1.0: 64/128/256/512, 512-d output)."""
    if in_channels < 1:
        raise ValueError(f"r3d18 needs at least one input channel, got {in_channels}")
    if width <= 0:
        raise ValueError(f"r3d18 width must be positive, got {width}")
    c = max(1, round(64 * width))
    widths = (c, 2 * c, 4 * c, 8 * c)
    strides: tuple[Triple, ...] = ((1, 1, 1), (2, 2, 2), (2, 2, 2), (1, 2, 2))
    dilations = (1, 1, 1, 2)
    stages, prev = [], c
    for out, depth, stride, dilation in zip(widths, R3D18_BLOCKS, strides, dilations):
        stages.append(create_res_stage(prev, out, depth, stride, dilation))
        prev = out
    return R3D(create_stem(in_channels, c), stages, widths[-1])


class ProjectionHead(nn.Module):
    """fc1 (bias) -> BN -> ReLU -> fc2 (no bias) -> BN -> L2-normalise: 512-512-128 at width 1."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = PROJECTION_DIM) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden_dim, out_dim, bias=False)
        self.bn2 = nn.BatchNorm1d(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_dim) -> unit vectors (B, out_dim)."""
        return F.normalize(self.bn2(self.fc2(self.relu(self.bn1(self.fc1(x))))), dim=-1)


class TCLREmbedding(NamedTuple):
    """What one clip gives: the time-pooled embedding (B, P), and for a sparse clip one per time step
    (B, T', P), else None."""

    clip: Tensor
    steps: Tensor | None


class TCLRModel(nn.Module):
    """One view's TCLR network: R3D-18 backbone and projection head."""

    def __init__(self, in_channels: int = 3, width: float = 1.0, proj_dim: int = PROJECTION_DIM) -> None:
        super().__init__()
        self.backbone = r3d18(in_channels, width)
        d = self.backbone.out_dim
        self.head = ProjectionHead(d, d, proj_dim)

    @property
    def in_channels(self) -> int:
        return self.backbone.in_channels

    @property
    def out_dim(self) -> int:
        return self.backbone.out_dim

    def forward(self, x: Tensor, steps: bool = False) -> TCLREmbedding:
        """Embed clips (B, C, T, H, W): the head on the time-averaged map and, with `steps` (a sparse clip),
        on each time step. Each step is its own head call, hence its own BatchNorm batch, as in the
        reference; one call on the steps stacked along the batch would normalise over all of them at once
        and give other values and other running statistics."""
        fmap = self.backbone(x)
        clip = self.head(fmap.mean(dim=-1))
        if not steps:
            return TCLREmbedding(clip, None)
        return TCLREmbedding(clip, torch.stack([self.head(fmap[..., t]) for t in range(fmap.shape[-1])], dim=1))


__all__ = ["BasicBlock", "ProjectionHead", "R3D", "TCLREmbedding", "TCLRModel", "create_res_stage",
           "create_stem", "r3d18", "time_cells"]
