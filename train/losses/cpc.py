"""L_cpc: dense InfoNCE between predicted and true block features, negatives from every rank."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Gather = Callable[[Tensor], Tensor]


def gathered(t: Tensor, gather: Gather | None) -> Tensor:
    """`t` concatenated over ranks along dim 0 (itself when single-process)."""
    return t if gather is None else gather(t)


def _cells(x: Tensor) -> Tensor:
    """(B, P, D, h, w) -> (B*P*h*w, D), rows ordered by clip, step, cell."""
    return x.flatten(3).transpose(2, 3).flatten(0, 2)


def cpc_loss(pred: Tensor, target: Tensor, temperature: float = 0.07, gather: Gather | None = None,
             offset: int = 0, temperature_twice: bool = False) -> tuple[Tensor, dict[str, float]]:
    """Mean over local predicted cells of -log softmax(pred . target_all / tau) at the true cell.

    pred, target: (B, P, D, h, w), already L2-normalised; offset = this rank's first clip index
    in the gathered batch. temperature_twice: divide by tau^2, as CoCon's code does (it divides both
    sides by tau); the same as temperature=tau^2."""
    if pred.shape != target.shape or pred.ndim != 5:
        raise ValueError(f"pred and target must both be (B, P, D, h, w), got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    rows = _cells(pred)
    cols = _cells(gathered(target, gather))
    logits = rows @ cols.T / (temperature * temperature if temperature_twice else temperature)
    per_clip = rows.shape[0] // pred.shape[0]
    labels = torch.arange(rows.shape[0], device=rows.device) + offset * per_clip
    loss = F.cross_entropy(logits, labels)
    with torch.no_grad():
        top1 = (logits.argmax(dim=1) == labels).float().mean()
        pos_logit = logits.gather(1, labels[:, None]).mean()
        values = torch.stack([top1, pos_logit]).tolist()  # one device sync
    return loss, dict(zip(("top1", "pos_logit"), values))
