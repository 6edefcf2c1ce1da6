"""The fine-tuning network of CoCon (supplementary A.4), over any pre-trained encoder: the encoder's clip
feature (CoCon: F = g(f(.)) spatially pooled), then BatchNorm, dropout (0.7) and one linear layer. With
`frozen=True` it is a linear probe: the encoder stays in eval mode without gradients and only the head trains."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class VideoClassifier(nn.Module):
    """Encoder (a `train.methods.Encoder`) + BatchNorm1d + Dropout + Linear over its clip feature."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.7, frozen: bool = False) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.backbone = backbone
        self.backbone.freeze_unused()
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

    @property
    def input_layout(self) -> str:
        return self.backbone.input_layout

    def train(self, mode: bool = True) -> VideoClassifier:
        """As nn.Module.train, but a frozen backbone stays in eval mode (BatchNorm statistics fixed)."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def features(self, x: Tensor) -> Tensor:
        """The encoder's clip feature (B, D)."""
        if self.frozen:
            with torch.no_grad():
                return self.backbone.clip_feature(x)
        return self.backbone.clip_feature(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes)."""
        return self.fc(self.dropout(self.norm(self.features(x))))
