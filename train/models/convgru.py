"""One-layer convolutional GRU: the aggregator g of DPC/CoCon."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvGRU(nn.Module):
    """ConvGRU cell run over time; dropout on the hidden state after every step (train mode)."""

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.input_dim, self.hidden_dim = input_dim, hidden_dim

        def conv() -> nn.Conv2d:
            return nn.Conv2d(input_dim + hidden_dim, hidden_dim, kernel_size, padding=kernel_size // 2)

        self.update_gate, self.reset_gate, self.candidate = conv(), conv(), conv()
        self.dropout = nn.Dropout(dropout)
        for m in (self.update_gate, self.reset_gate, self.candidate):
            nn.init.orthogonal_(m.weight)
            nn.init.zeros_(m.bias)

    def step(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One time step: x (B, C, s, s), h (B, hidden, s, s) or None for zeros -> new h."""
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_dim, *x.shape[2:])
        xh = torch.cat([x, h], dim=1)
        z = torch.sigmoid(self.update_gate(xh))
        r = torch.sigmoid(self.reset_gate(xh))
        cand = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return self.dropout((1 - z) * h + z * cand)

    def forward(self, seq: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run over seq (B, T, C, s, s) -> (all hidden states (B, T, hidden, s, s), last state)."""
        h, outputs = h0, []
        for t in range(seq.shape[1]):
            h = self.step(seq[:, t], h)
            outputs.append(h)
        if h is None:
            raise ValueError("ConvGRU needs a sequence of at least one step")
        return torch.stack(outputs, dim=1), h
