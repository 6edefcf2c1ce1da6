"""The fine-tuning network of CoCon (supplementary A.4): F = g(f(.)) from a CPC model, spatial pooling,
then BatchNorm, dropout (0.7) and one linear layer. With `frozen=True` it is a linear probe: f and g stay
in eval mode without gradients and only the head trains."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .cpc import CPCModel


class VideoClassifier(nn.Module):
    """CPC backbone (its predictor unused and frozen) + BatchNorm1d + Dropout + Linear over F(V)."""

    def __init__(self, in_channels: int, num_classes: int, depth: int = 18, width: float = 1.0,
                 num_blocks: int = 8, dropout: float = 0.7, gru_dropout: float = 0.1, frozen: bool = False) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.backbone = CPCModel(in_channels, depth=depth, width=width, num_blocks=max(num_blocks, 2),
                                 pred_steps=1, dropout=gru_dropout)
        self.backbone.predictor.requires_grad_(False)  # kept only so that checkpoints load strictly
        self.frozen = frozen
        if frozen:
            self.backbone.requires_grad_(False)
        d = self.backbone.out_dim
        self.norm = nn.BatchNorm1d(d)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(d, num_classes)
        nn.init.zeros_(self.fc.bias)

    @property
    def in_channels(self) -> int:
        return self.backbone.in_channels

    def train(self, mode: bool = True) -> VideoClassifier:
        """As nn.Module.train, but a frozen backbone stays in eval mode (BatchNorm statistics fixed)."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def features(self, x: Tensor) -> Tensor:
        """F(V) spatially averaged: (B, N, C, K, H, W) -> (B, D)."""
        if self.frozen:
            with torch.no_grad():
                return self.backbone.represent(x)
        return self.backbone.represent(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes)."""
        return self.fc(self.dropout(self.norm(self.features(x))))
