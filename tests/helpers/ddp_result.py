"""What a torchrun test worker hands back: the loss terms averaged over ranks and rank 0's gradients."""

from pathlib import Path
from typing import Any

import torch

from train.engine.distributed import DistInfo, mean_over_ranks


def save_rank_result(out: str | Path, dist: DistInfo, model: torch.nn.Module, losses: Any) -> None:
    """Average `losses` (terms and total) over ranks; rank 0 saves them with its parameters' gradients."""
    values = mean_over_ranks({**losses.terms, "total": float(losses.total)}, dist.device)
    if dist.is_main:
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save({"values": values, "grads": grads}, out)
