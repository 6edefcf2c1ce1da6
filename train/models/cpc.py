"""One view's CPC model (f, g, phi) with the prediction recurrence of Eq. (4), and Pool(.)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .convgru import ConvGRU
from .resnet2d3d import resnet2d3d

NORM_EPS = 1e-5
CONTEXT_NORMS = ("every_step", "once")
PREDICTOR_INITS = ("default", "orthogonal", "orthogonal_zero_bias")


def l2_normalise(x: Tensor, dim: int = 1, eps: float = NORM_EPS) -> Tensor:
    """x / (||x||_2 + eps) along `dim`."""
    return x / (x.norm(dim=dim, keepdim=True) + eps)


def pool_blocks(features: Tensor, pad_odd: bool = False) -> Tensor:
    """Pool (B, N, D, h, w) cells to one L2-normalised vector per block (B, N, D): stacked 2x2 max
    pools until the map is at most 2x2, then a global average.

    An odd side is pooled with one extra window at its end (ceil_mode), or with pad_odd by padding one
    cell on both sides, as CoCon's MaxPool2d(2, 2, padding=1) at 7x7 cells (224 px); even sides agree."""
    b, n, d, h, w = features.shape
    x = features.reshape(b * n, d, h, w)
    while max(x.shape[-2:]) > 2:
        kernel = (min(2, x.shape[-2]), min(2, x.shape[-1]))
        if pad_odd:
            padding = tuple(int(k == 2 and size % 2 == 1) for k, size in zip(kernel, x.shape[-2:]))
            x = F.max_pool2d(x, kernel, stride=kernel, padding=padding)
        else:
            x = F.max_pool2d(x, kernel, stride=kernel, ceil_mode=True)
    return l2_normalise(x.mean(dim=(-2, -1)).reshape(b, n, d), dim=-1)


@dataclass
class CPCOutput:
    """What one view's forward pass yields (all per-cell L2-normalised over channels D)."""

    pred: Tensor      # (B, P, D, s, s) predictions z~ of the last P blocks
    target: Tensor    # (B, P, D, s, s) encoder features of the last P blocks
    features: Tensor  # (B, N, D, s, s) encoder features of every block
    context: Tensor   # (B, D, s, s) aggregated context c_t of the first N - P blocks


class CPCModel(nn.Module):
    """Encoder f (2D-3D ResNet), aggregator g (ConvGRU, 1x1) and predictor phi (two 1x1 convs). Downstream it
    is CoCon's `train.methods.Encoder`: blocks in, F(V) per clip, z' per block.

    Settings that reproduce the authors' code (research/cocon_parity.md), each default being ours:
    context_norm "once" L2-normalises the hidden state only after the last context step, not after
    every one (CoCon; prediction steps are normalised either way); predictor_init "orthogonal" gives
    the predictor's convs orthogonal weights and PyTorch's default bias (CoCon), "orthogonal_zero_bias"
    zero biases (DPC); track_running_stats=False makes the encoder's BatchNorm use batch statistics
    also in eval mode (DPC's pre-training)."""

    pool_blocks = staticmethod(pool_blocks)  # also reachable as model.pool_blocks(features)
    input_layout = "blocks"                  # (B, N, C, K, H, W): see train.data.layout

    def __init__(self, in_channels: int, depth: int = 18, width: float = 1.0, num_blocks: int = 8,
                 pred_steps: int = 3, dropout: float = 0.1, context_norm: str = "every_step",
                 predictor_init: str = "default", track_running_stats: bool = True) -> None:
        super().__init__()
        if not 0 < pred_steps < num_blocks:
            raise ValueError(f"pred_steps must be in 1..num_blocks-1, got {pred_steps} of {num_blocks}")
        if context_norm not in CONTEXT_NORMS:
            raise ValueError(f"context_norm must be one of {CONTEXT_NORMS}, got {context_norm!r}")
        if predictor_init not in PREDICTOR_INITS:
            raise ValueError(f"predictor_init must be one of {PREDICTOR_INITS}, got {predictor_init!r}")
        self.in_channels, self.depth, self.width = in_channels, depth, width
        self.num_blocks, self.pred_steps = num_blocks, pred_steps
        self.context_norm = context_norm
        self.encoder = resnet2d3d(depth, in_channels, width, track_running_stats)
        self.out_dim = d = self.encoder.out_dim
        self.aggregator = ConvGRU(d, d, kernel_size=1, dropout=dropout)
        self.predictor = nn.Sequential(nn.Conv2d(d, d, 1), nn.ReLU(inplace=True), nn.Conv2d(d, d, 1))
        if predictor_init != "default":
            for conv in (self.predictor[0], self.predictor[2]):
                nn.init.orthogonal_(conv.weight)
                if predictor_init == "orthogonal_zero_bias":
                    nn.init.zeros_(conv.bias)

    def encode(self, x: Tensor) -> Tensor:
        """f on every block, averaged over time, normalised per cell: (B,N,C,K,H,W) -> (B,N,D,s,s)."""
        if x.ndim != 6 or x.shape[2] != self.in_channels:
            raise ValueError(f"expected input (B, N, {self.in_channels}, K, H, W), got {tuple(x.shape)}")
        b, n = x.shape[:2]
        z = self.encoder(x.flatten(0, 1)).mean(dim=2)
        return l2_normalise(z).unflatten(0, (b, n))

    def _step(self, z: Tensor, c: Tensor | None) -> Tensor:
        """One aggregator step, hidden state re-normalised per cell."""
        return l2_normalise(self.aggregator.step(z, c))

    def aggregate(self, features: Tensor) -> Tensor:
        """g over the blocks of (B, T, D, s, s) from a zero state -> last context (B, D, s, s),
        normalised after every step or (context_norm "once") after the last."""
        c: Tensor | None = None
        if self.context_norm == "once":
            for t in range(features.shape[1]):
                c = self.aggregator.step(features[:, t], c)
            assert c is not None
            return l2_normalise(c)
        for t in range(features.shape[1]):
            c = self._step(features[:, t], c)
        assert c is not None
        return c

    def forward(self, x: Tensor) -> CPCOutput:
        """Encode all N blocks, aggregate the first N-P, predict the last P feeding predictions back."""
        if x.ndim == 6 and x.shape[1] <= self.pred_steps:
            raise ValueError(f"need more than {self.pred_steps} blocks, got {x.shape[1]}")
        features = self.encode(x)
        split = features.shape[1] - self.pred_steps
        context = c = self.aggregate(features[:, :split])
        preds = []
        for k in range(self.pred_steps):
            z_hat = l2_normalise(self.predictor(c))
            preds.append(z_hat)
            if k + 1 < self.pred_steps:
                c = self._step(z_hat, c)
        return CPCOutput(pred=torch.stack(preds, dim=1), target=features[:, split:],
                         features=features, context=context)

    def represent(self, x: Tensor) -> Tensor:
        """Video-level feature F(V) = g(f(V)) over all N blocks, spatially averaged: (B, D)."""
        return self.aggregate(self.encode(x)).mean(dim=(-2, -1))

    def clip_feature(self, x: Tensor) -> Tensor:
        """The clip feature of downstream tasks: F(V), (B, D)."""
        return self.represent(x)

    def block_features(self, x: Tensor) -> Tensor:
        """z' = Pool(f(block)) of every block, L2-normalised: (B, N, D)."""
        return pool_blocks(self.encode(x))

    def freeze_unused(self) -> None:
        """The predictor phi serves pre-training only: no gradients into it downstream (it stays in the
        state dict so that checkpoints load strictly)."""
        self.predictor.requires_grad_(False)
