"""The paper's cooperative losses L_sim and L_sync between views, and their sum L_cocon.

D(x, y) = 1 - cos(x, y); h are L2-normalised instance features (M, D). Rows are this rank's
instances, columns the instances gathered from all ranks; `offset` is the index of this rank's
first instance among the gathered ones."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import torch
from torch import Tensor

from ..models.cpc import l2_normalise
from .cpc import Gather, gathered

GRANULARITIES = ("block", "clip")
# L_sim's overall factor: the paper's sum of two means, or CoCon's code, whose weighted hinge averages the
# positive and negative terms with weight 1/2 each (half the paper's value at mu = 1; research/cocon_parity.md).
SIM_SCALES: dict[str, float] = {"paper": 1.0, "authors": 0.5}
_PENALTIES: dict[str, Callable[[Tensor], Tensor]] = {"squared": torch.square, "l1": torch.abs}
PENALTIES = tuple(_PENALTIES)  # L_sync penalties: "squared" (the paper), "l1" (the authors' code)
# L_sync's forms: the paper's gap between the views' distance matrices, or the views' instances standardised
# per dimension over the batch and compared directly (a constant or near-constant feature cannot meet it).
SYNC_FORMS = ("relational", "standardised")
STANDARDISE_EPS = 1e-6   # added to each dimension's variance: a dimension constant over the batch stays finite


def _penalty(name: str) -> Callable[[Tensor], Tensor]:
    """The L_sync penalty function called `name`."""
    if name not in _PENALTIES:
        raise ValueError(f"penalty must be one of {sorted(_PENALTIES)}, got {name!r}")
    return _PENALTIES[name]


def instances(pooled: Tensor, granularity: str) -> Tensor:
    """(B, N, D) pooled block features -> instances (M, D): every block (M=B*N, clip-major) or
    every clip (M=B, mean over blocks, re-normalised)."""
    if granularity == "block":
        return pooled.flatten(0, 1)
    if granularity == "clip":
        return l2_normalise(pooled.mean(dim=1), dim=-1)
    raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")


def _positive_mask(rows: int, cols: int, offset: int, device: torch.device) -> Tensor:
    """Boolean (rows, cols) mask, True at (a, offset + a)."""
    mask = torch.zeros(rows, cols, dtype=torch.bool, device=device)
    idx = torch.arange(rows, device=device)
    mask[idx, idx + offset] = True
    return mask


def _sim_scale(name: str) -> float:
    """The L_sim factor called `name`."""
    if name not in SIM_SCALES:
        raise ValueError(f"sim_scale must be one of {sorted(SIM_SCALES)}, got {name!r}")
    return SIM_SCALES[name]


def sim_loss(h0: Tensor, h1: Tensor, mu: float = 1.0, gather: Gather | None = None,
             offset: int = 0, scale: str = "paper") -> tuple[Tensor, dict[str, float]]:
    """L_sim = mean_a D(h0^a, h1^a) + mu * mean_{a!=b} max(0, 1 - D(h0^a, h1^b)), times 1/2 with
    scale="authors" (CoCon's code)."""
    factor = _sim_scale(scale)
    cos = h0 @ gathered(h1, gather).T
    pos = _positive_mask(*cos.shape, offset, cos.device)
    pos_cos, neg_cos = cos[pos], cos[~pos]
    loss = (1 - pos_cos).mean()
    if neg_cos.numel():
        loss = loss + mu * neg_cos.clamp(min=0).mean()
    if factor != 1.0:
        loss = factor * loss
    with torch.no_grad():
        nan = torch.full((), float("nan"), device=cos.device)
        means = torch.stack([pos_cos.mean(), neg_cos.mean() if neg_cos.numel() else nan]).tolist()
    return loss, dict(zip(("pos_cos", "neg_cos"), means))


def sync_loss(h0: Tensor, h1: Tensor, penalty: str = "squared", gather: Gather | None = None,
              offset: int = 0) -> tuple[Tensor, dict[str, float]]:
    """L_sync = mean_{a,b} penalty(D(h0^a, h0^b) - D(h1^a, h1^b)); every (a, b) pair counts, so
    `offset` is accepted for a uniform signature but not needed."""
    del offset
    fn = _penalty(penalty)
    d0 = 1 - h0 @ gathered(h0, gather).T
    d1 = 1 - h1 @ gathered(h1, gather).T
    gap = d0 - d1
    loss = fn(gap).mean()
    with torch.no_grad():
        stats = {"abs_gap": gap.abs().mean().item()}
    return loss, stats


def standardise(h: Tensor, gather: Gather | None = None) -> Tensor:
    """h (M, D) with each dimension shifted and scaled to zero mean and unit variance over the instances of every
    rank (population variance + STANDARDISE_EPS)."""
    every = gathered(h, gather)
    mean = every.mean(dim=0)
    var = (every - mean).square().mean(dim=0)
    return (h - mean) / (var + STANDARDISE_EPS).sqrt()


def standardised_sync_loss(h0: Tensor, h1: Tensor, gather: Gather | None = None,
                           offset: int = 0) -> tuple[Tensor, dict[str, float]]:
    """L_sync in its standardised form: mean over instances a and dimensions d of (z0[a, d] - z1[a, d])^2, z the
    `standardise`d instances; = 2 (1 - mean_d corr_d) with corr_d the correlation over the batch of dimension d of
    the two views (Barlow Twins' invariance term). Features that are the same for every instance cannot meet it,
    unlike the relational form. `offset` is accepted for a uniform signature but not needed."""
    del offset
    z0, z1 = standardise(h0, gather), standardise(h1, gather)
    loss = (z0 - z1).square().mean()
    return loss, {"corr": 1.0 - 0.5 * loss.item()}


def cocon_loss(cpc_losses: dict[str, Tensor], pooled: dict[str, Tensor], lambda_sim: float = 1.0,
               lambda_sync: float = 1.0, mu: float = 1.0, penalty: str = "squared",
               granularity: str = "block", gather: Gather | None = None, offset: int = 0,
               sim_scale: str = "paper", teacher: str = "",
               sync_form: str = "relational") -> tuple[Tensor, dict[str, Tensor], dict[str, float]]:
    """L_cocon = sum_v L_cpc(v) + lambda_sim sum_pairs L_sim + lambda_sync sum_pairs L_sync.

    pooled: view -> (B, N, D) from `pool_blocks`; offset: this rank's first CLIP in the gathered
    batch; sim_scale: see `sim_loss`; teacher: a view whose instances enter L_sim and L_sync with their
    gradients stopped (the terms then train only the other views); sync_form: "relational" (`sync_loss`, with
    `penalty`) or "standardised" (`standardised_sync_loss`). Pairs are unordered, in sorted view-name order,
    named "first-second"."""
    if set(cpc_losses) != set(pooled) or not pooled:
        raise ValueError(f"cpc_losses and pooled must name the same views, got "
                         f"{sorted(cpc_losses)} and {sorted(pooled)}")
    _penalty(penalty)
    _sim_scale(sim_scale)
    if sync_form not in SYNC_FORMS:
        raise ValueError(f"sync_form must be one of {SYNC_FORMS}, got {sync_form!r}")
    views = sorted(pooled)
    shapes = {tuple(pooled[v].shape[:2]) for v in views}
    if len(shapes) != 1:
        raise ValueError(f"every view needs the same (clips, blocks), got {sorted(shapes)}")
    per_clip = pooled[views[0]].shape[1] if granularity == "block" else 1
    if teacher and teacher not in pooled:
        raise ValueError(f"teacher must be one of the views {views}, got {teacher!r}")
    h = {v: instances(pooled[v], granularity) for v in views}
    if teacher:
        h[teacher] = h[teacher].detach()
    total = torch.stack([cpc_losses[v] for v in views]).sum()
    terms = {f"cpc/{v}": cpc_losses[v].detach() for v in views}
    stats: dict[str, float] = {}
    for a, b in combinations(views, 2):
        pair = f"{a}-{b}"
        sim, sim_stats = sim_loss(h[a], h[b], mu, gather, offset * per_clip, sim_scale)
        if sync_form == "standardised":
            sync, sync_stats = standardised_sync_loss(h[a], h[b], gather, offset * per_clip)
            stats[f"sync_corr/{pair}"] = sync_stats["corr"]
        else:
            sync, _ = sync_loss(h[a], h[b], penalty, gather, offset * per_clip)
        total = total + lambda_sim * sim + lambda_sync * sync
        terms[f"sim/{pair}"], terms[f"sync/{pair}"] = sim.detach(), sync.detach()
        stats[f"pos_cos/{pair}"], stats[f"neg_cos/{pair}"] = sim_stats["pos_cos"], sim_stats["neg_cos"]
    return total, terms, stats
