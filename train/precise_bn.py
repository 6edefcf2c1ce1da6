"""Precise BatchNorm statistics: after training, re-estimate every trainable BatchNorm layer's running mean
and variance as the plain average over many batches of the final weights, instead of the exponential average
left by training (which still remembers early weights and, after few steps, its initial values)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any],
                          max_batches: int) -> int:
    """Reset the running statistics of `model`'s BatchNorm layers that train (frozen ones are left alone),
    run `forward(batch)` in train mode for up to `max_batches` batches, keep the cumulative averages, and
    average them over ranks. Returns the number of batches used."""
    layers = [m for m in model.modules() if isinstance(m, BATCHNORM) and m.track_running_stats
              and any(p.requires_grad for p in m.parameters())]
    if not layers or max_batches <= 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the plain mean over the batches seen
    model.train()
    n = 0
    for batch in batches:
        if n >= max_batches:
            break
        forward(batch)
        n += 1
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf)
                buf /= dist.get_world_size()
    model.train(was_training)
    return n
