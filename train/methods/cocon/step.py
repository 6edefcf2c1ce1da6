"""CoCon's loss step: L_cpc per view, plus L_sim and L_sync over view pairs in a cooperative stage, with
negatives gathered from every rank."""

from __future__ import annotations

from typing import Any

import torch

from ...engine.distributed import gather_with_grad
from ...engine.job import LossTerms
from ...losses import cocon_loss, cpc_loss
from ...models import pool_blocks
from .config import CONTEXT, LossConfig


def cocon_losses(loss: LossConfig, outs: dict[str, Any], cooperative: bool, offset: int) -> LossTerms:
    """The loss terms of one batch from each view's CPCOutput; `offset` is this rank's first clip."""
    cpc_terms: dict[str, torch.Tensor] = {}
    stats: dict[str, float] = {}
    for view, out in outs.items():
        value, s = cpc_loss(out.pred.float(), out.target.float(), temperature=loss.temperature,
                            temperature_twice=loss.temperature_twice, gather=gather_with_grad, offset=offset)
        cpc_terms[view] = value
        stats[f"top1/{view}"] = float(s["top1"])
    if cooperative and len(outs) > 1:
        on_context = loss.granularity == CONTEXT
        pooled = {v: pool_blocks((out.context.unsqueeze(1) if on_context else out.features).float(),
                                 pad_odd=loss.pool_pad_odd) for v, out in outs.items()}
        total, terms, pair_stats = cocon_loss(
            cpc_terms, pooled, lambda_sim=loss.lambda_sim, lambda_sync=loss.lambda_sync, mu=loss.mu,
            penalty=loss.sync_penalty, granularity="block" if on_context else loss.granularity,   # a context: 1 block
            gather=gather_with_grad, offset=offset, sim_scale=loss.sim_scale, teacher=loss.teacher,
            sync_form=loss.sync_form)
        stats.update({k: float(v) for k, v in pair_stats.items()})
        values = {k: float(v) for k, v in terms.items()}
    else:
        total = sum(cpc_terms.values())
        values = {f"cpc/{v}": float(t.detach()) for v, t in cpc_terms.items()}
    return LossTerms(total=total, terms=values, stats=stats)
