"""Per-view networks: 2D-3D ResNet encoder, ConvGRU aggregator, CPC model."""

from .classifier import VideoClassifier
from .convgru import ConvGRU
from .cpc import CPCModel, CPCOutput, l2_normalise, pool_blocks
from .resnet2d3d import ResNet2d3d, resnet2d3d

__all__ = ["resnet2d3d", "ResNet2d3d", "ConvGRU", "CPCModel", "CPCOutput", "pool_blocks",
           "l2_normalise", "VideoClassifier"]
