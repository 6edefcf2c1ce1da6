"""DPC's 2D-3D ResNet encoder f: (1,3,3) residual stages first, 3x3x3 stages last, 256-d output."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

BLOCKS_PER_DEPTH: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def _conv(in_ch: int, out_ch: int, temporal: bool, stride: int = 1, kernel: int = 3) -> nn.Conv3d:
    """A bias-free conv: kernel k x k x k when `temporal`, else 1 x k x k (stride likewise)."""
    k = (kernel if temporal else 1, kernel, kernel)
    s = (stride if temporal else 1, stride, stride)
    return nn.Conv3d(in_ch, out_ch, k, stride=s, padding=tuple(x // 2 for x in k), bias=False)


def _bn(channels: int, track_running_stats: bool) -> nn.BatchNorm3d:
    """BatchNorm3d; without running statistics it normalises by the batch's also in eval mode (DPC)."""
    return nn.BatchNorm3d(channels, track_running_stats=track_running_stats)


class BasicBlock(nn.Module):
    """Residual block of two convs, 2D (1x3x3) or 3D (3x3x3); the final ReLU can be left out."""

    def __init__(self, in_ch: int, out_ch: int, temporal: bool, stride: int = 1,
                 final_relu: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.conv1 = _conv(in_ch, out_ch, temporal, stride)
        self.bn1 = _bn(out_ch, track_running_stats)
        self.conv2 = _conv(out_ch, out_ch, temporal)
        self.bn2 = _bn(out_ch, track_running_stats)
        self.relu = nn.ReLU(inplace=True)
        self.final_relu = final_relu
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(_conv(in_ch, out_ch, temporal, stride, kernel=1),
                                          _bn(out_ch, track_running_stats))

    def forward(self, x: Tensor) -> Tensor:
        """conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU unless disabled."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return self.relu(out) if self.final_relu else out


def _stage(in_ch: int, out_ch: int, num_blocks: int, temporal: bool, stride: int,
           last_relu: bool = True, track_running_stats: bool = True) -> nn.Sequential:
    """`num_blocks` blocks; the first one strides and changes width."""
    blocks = [BasicBlock(in_ch if i == 0 else out_ch, out_ch, temporal, stride if i == 0 else 1,
                         final_relu=last_relu or i < num_blocks - 1, track_running_stats=track_running_stats)
              for i in range(num_blocks)]
    return nn.Sequential(*blocks)


class ResNet2d3d(nn.Module):
    """Stem, two 2D stages, two 3D stages; (B, C, K, H, W) -> (B, 4*c1, T', H/32, W/32).

    track_running_stats=False: every BatchNorm normalises with the batch's statistics, in eval mode too,
    and keeps no running averages (DPC's pre-training)."""

    def __init__(self, blocks: Sequence[int], in_channels: int = 3, width: float = 1.0,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        c1 = max(4, round(64 * width))
        self.out_dim = 4 * c1
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, c1, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            _bn(c1, track_running_stats), nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        t = track_running_stats
        self.layer1 = _stage(c1, c1, blocks[0], temporal=False, stride=1, track_running_stats=t)
        self.layer2 = _stage(c1, 2 * c1, blocks[1], temporal=False, stride=2, track_running_stats=t)
        self.layer3 = _stage(2 * c1, 4 * c1, blocks[2], temporal=True, stride=2, track_running_stats=t)
        self.layer4 = _stage(4 * c1, 4 * c1, blocks[3], temporal=True, stride=2, last_relu=False,
                             track_running_stats=t)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal (fan_out) convs; BatchNorm weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Encode a batch of blocks (B, C, K, H, W)."""
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet2d3d(depth: int = 18, in_channels: int = 3, width: float = 1.0,
               track_running_stats: bool = True) -> ResNet2d3d:
    """Build the 2D-3D ResNet-18 or -34 (width scales every stage; 1.0 gives 256-d output)."""
    if depth not in BLOCKS_PER_DEPTH:
        raise ValueError(f"resnet2d3d depth must be one of {sorted(BLOCKS_PER_DEPTH)}, got {depth}")
    if width <= 0:
        raise ValueError(f"resnet2d3d width must be positive, got {width}")
    return ResNet2d3d(BLOCKS_PER_DEPTH[depth], in_channels, width, track_running_stats)


__all__ = ["BasicBlock", "ResNet2d3d", "resnet2d3d", "BLOCKS_PER_DEPTH"]
