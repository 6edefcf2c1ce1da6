"""TCLR's networks: one R3D-18 + projection head per view for pre-training (`TCLRViews`), and one view's
backbone alone as the downstream `Encoder` (`TCLREncoder`)."""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from ...models.r3d import R3D, TCLRModel, r3d18
from ..protocol import Downstream, TestClips

# TCLR's downstream protocols (research/tclr_reference.md §7-8): retrieval over 9 evenly placed clips of the
# time-unpooled map, the linear probe's test over 10, softmax averaged; inputs in [0, 1], no mean/std.
TCLR_DOWNSTREAM = Downstream(retrieval=TestClips(9, "even"), classification=TestClips(10, "even"),
                             feature="the R3D-18 map kept in time (channels x time cells) flattened", normalise=False)


class TCLRInputs(NamedTuple):
    """One view's augmented clips: sparse (B·2, C, F, s, s), the two copies of each video next to each other,
    and dense (B·2·L, C, F, s, s), video-major, then copy, then dense clip."""

    sparse: Tensor
    dense: Tensor


class TCLROutputs(NamedTuple):
    """One view's embeddings in the shapes `train.losses.tclr` takes: sparse_global (B, 2, D), sparse_local and
    dense (B, 2, T, D)."""

    sparse_global: Tensor
    sparse_local: Tensor
    dense: Tensor


class TCLRViews(nn.Module):
    """One TCLRModel per view; forward embeds each view's sparse clips (time-pooled and per time step) and its
    dense clips (time-pooled), in two calls as the reference does."""

    def __init__(self, models: dict[str, TCLRModel]) -> None:
        super().__init__()
        self.views = nn.ModuleDict(models)

    def forward(self, inputs: dict[str, TCLRInputs]) -> dict[str, TCLROutputs]:
        out = {}
        for name, x in inputs.items():
            model = self.views[name]
            sparse = model(x.sparse, steps=True)
            dense = model(x.dense).clip
            b = x.sparse.shape[0] // 2
            assert sparse.steps is not None
            out[name] = TCLROutputs(sparse.clip.view(b, 2, -1), sparse.steps.view(b, 2, *sparse.steps.shape[1:]),
                                    dense.view(b, 2, -1, dense.shape[-1]))
        return out


class TCLREncoder(nn.Module):
    """A TCLR backbone as fine-tuning and evaluation use it (`train.methods.Encoder`): clips (B, C, T, H, W);
    `clip_feature` averages the time-kept map (B, D) as TCLR's linear evaluation does; `retrieval_feature`
    flattens it unpooled (B, D·T'), as TCLR's retrieval does (2048-d for 16 frames at width 1);
    `block_features` gives one L2-normalised vector per time cell (B, T', D)."""

    input_layout = "clip"
    downstream = TCLR_DOWNSTREAM

    def __init__(self, backbone: R3D) -> None:
        super().__init__()
        self.backbone = backbone
        self.out_dim = backbone.out_dim

    @property
    def in_channels(self) -> int:
        return self.backbone.in_channels

    def clip_feature(self, x: Tensor) -> Tensor:
        return self.backbone(x).mean(dim=-1)

    def retrieval_feature(self, x: Tensor) -> Tensor:
        return self.backbone(x).flatten(1)

    def block_features(self, x: Tensor) -> Tensor:
        return F.normalize(self.backbone(x).transpose(1, 2), dim=-1)

    def freeze_unused(self) -> None:
        """Nothing to freeze: the projection head is not part of the encoder."""

    def forward(self, x: Tensor) -> Tensor:
        return self.clip_feature(x)


def random_encoder(channels: int, width: float) -> TCLREncoder:
    return TCLREncoder(r3d18(channels, width))
