"""TCLR's loss step: L_TCLR per view (negatives of L_IC gathered from every rank), plus CoCon's L_sim and
L_sync between the views' sparse-clip embeddings when the run is cooperative."""

from __future__ import annotations

import torch

from ...engine.distributed import gather_with_grad
from ...engine.job import LossTerms
from ...losses import cocon_loss
from ...losses.tclr import tclr_loss
from .config import LossConfig
from .model import TCLROutputs


def tclr_losses(loss: LossConfig, outs: dict[str, TCLROutputs], offset: int) -> LossTerms:
    """The loss terms of one batch; `offset` is this rank's first video in the global batch. Terms are named
    "<term>/<view>"; a cooperative run adds "sim/<a>-<b>" and "sync/<a>-<b>" (and the pairs' cosines)."""
    per_view: dict[str, torch.Tensor] = {}
    terms: dict[str, float] = {}
    for view, out in outs.items():
        total, parts = tclr_loss(out.sparse_global.float(), out.sparse_local.float(), out.dense.float(),
                                 loss.temperature, loss.ll_reduction, gather_with_grad, offset)
        per_view[view] = total
        terms.update({f"{k}/{view}": float(v) for k, v in parts.items()})
        terms[f"tclr/{view}"] = float(total.detach())
    if not loss.cooperative or len(outs) < 2:
        return LossTerms(total=torch.stack(list(per_view.values())).sum(), terms=terms)
    # the sparse clip's per-time-step embeddings of the first augmentation: one instance per time cell ("block")
    pooled = {v: out.sparse_local[:, 0].float() for v, out in outs.items()}
    total, pair_terms, stats = cocon_loss(per_view, pooled, lambda_sim=loss.lambda_sim, lambda_sync=loss.lambda_sync,
                                          mu=loss.mu, penalty=loss.sync_penalty, granularity=loss.granularity,
                                          gather=gather_with_grad, offset=offset)
    terms.update({k: float(v) for k, v in pair_terms.items() if not k.startswith("cpc/")})
    return LossTerms(total=total, terms=terms, stats=stats)
