"""TCLR's losses (seeds/002_*, research/tclr_reference.md §5): instance contrastive L_IC (global and local
parts), local-local L_LL and global-local L_GL, each a pure function of L2-normalised embeddings.

Shapes, B videos, T time cells (4), D embedding size (128):
  sparse_global (B, 2, D)     the time-pooled sparse (global) clip, under augmentations 0 and 1
  sparse_local  (B, 2, T, D)  the sparse clip's map, each time step through the head (L_{i,k} of the slides)
  dense         (B, 2, T, D)  the T dense (local) clips, dense clip k covering sparse time cell k (G_{i,k})
s(u, v) = u·v / τ throughout (the vectors are unit, so this is the cosine over τ, τ = 0.1).

Under torchrun, `gather` (as in cpc.py) concatenates a tensor over ranks along dim 0 with gradients, and
`offset` is this rank's first video in the gathered batch: L_IC then takes its negatives from every rank, as
the reference's DataParallel does. L_LL and L_GL contrast clips of one video only and need no gather. Every
term is a mean over this rank's anchors, so DDP's gradient average over equal-sized ranks gives the
one-process value; L_LL's reference "sum over the batch" is therefore written as mean x global batch size.
"""

from __future__ import annotations

from itertools import permutations

import torch
import torch.nn.functional as F
from torch import Tensor

from .cpc import Gather, gathered

TEMPERATURE = 0.1
LL_REDUCTIONS = ("sum", "mean")


def _anchor_losses(anchors: Tensor, anchors_all: Tensor, partners_all: Tensor, temperature: float,
                   offset: int) -> Tensor:
    """Per anchor a (..., m): -s(z_a, z'_a) + log(sum_{b != a} e^{s(z_a, z_b)} + sum_b e^{s(z_a, z'_b)}).

    anchors (..., m, D) are this rank's rows; anchors_all, partners_all (..., M, D) the gathered columns, in
    which anchor a and its partner sit at offset + a."""
    m, total = anchors.shape[-2], anchors_all.shape[-2]
    own = anchors @ anchors_all.transpose(-1, -2) / temperature
    cross = anchors @ partners_all.transpose(-1, -2) / temperature
    rows = torch.arange(m, device=anchors.device)
    itself = torch.zeros(m, total, dtype=torch.bool, device=anchors.device)
    itself[rows, rows + offset] = True
    own = own.masked_fill(itself, float("-inf"))  # an anchor is not its own negative
    positive = cross[..., rows, rows + offset]
    return torch.logsumexp(torch.cat([own, cross], dim=-1), dim=-1) - positive


def _nt_xent_gathered(z_i: Tensor, z_j: Tensor, all_i: Tensor, all_j: Tensor, temperature: float,
                      offset: int) -> Tensor:
    """NT-Xent of local rows against already-gathered columns (see `nt_xent`)."""
    both = torch.cat([_anchor_losses(z_i, all_i, all_j, temperature, offset),
                      _anchor_losses(z_j, all_j, all_i, temperature, offset)], dim=-1)
    return both.mean(dim=-1)


def nt_xent(z_i: Tensor, z_j: Tensor, temperature: float = TEMPERATURE, gather: Gather | None = None,
            offset: int = 0) -> Tensor:
    """SimCLR's NT-Xent as the reference computes it: over the 2M anchors of R = [z_i; z_j] (M, D) each,

        l(a) = -log( e^{s(R_a, R_a+-M)} / sum_{c != a} e^{s(R_a, R_c)} ),   loss = mean_a l(a),

    positive = the same instance in the other tensor, negatives = the 2M - 2 others. Symmetric in (z_i, z_j).
    Leading batch dims (..., M, D) give one loss per leading index (no gather then)."""
    if z_i.shape != z_j.shape or z_i.ndim < 2:
        raise ValueError(f"z_i and z_j must both be (..., M, D), got {tuple(z_i.shape)} and {tuple(z_j.shape)}")
    if gather is not None and z_i.ndim != 2:
        raise ValueError("a gathered NT-Xent needs (M, D) inputs")
    return _nt_xent_gathered(z_i, z_j, gathered(z_i, gather), gathered(z_j, gather), temperature, offset)


def ic_global_loss(sparse_global: Tensor, temperature: float = TEMPERATURE, gather: Gather | None = None,
                   offset: int = 0) -> Tensor:
    """L_IC, global part: NT-Xent between the two augmentations of the sparse clip,
    -log h(G_i, G'_i) / sum_j [1_{j != i} h(G_i, G_j) + h(G_i, G'_j)], averaged over both directions."""
    both = gathered(sparse_global, gather)  # one gather for the two augmentations
    return _nt_xent_gathered(sparse_global[:, 0], sparse_global[:, 1], both[:, 0], both[:, 1], temperature, offset)


def ic_local_loss(dense: Tensor, temperature: float = TEMPERATURE, gather: Gather | None = None,
                  offset: int = 0) -> Tensor:
    """L_IC, local part: (1/T) sum over the ordered pairs p != q of the 2T dense clips (augmentation u, clip k)
    of NT-Xent(p, q): 56 pairs for T = 4, each unordered pair counted twice, as the reference sums them (its
    1/4 is written 1/T here). Positive: the same video at another time and/or augmentation."""
    return _ic_local_gathered(dense, gathered(dense, gather), temperature, offset)


def _ic_local_gathered(dense: Tensor, dense_all: Tensor, temperature: float, offset: int) -> Tensor:
    """L_IC, local part, of local rows against already-gathered columns (see `ic_local_loss`)."""
    t = dense.shape[2]
    clips, clips_all = dense.flatten(1, 2), dense_all.flatten(1, 2)  # (B, 2T, D), clip p = u * T + k
    pairs = [_nt_xent_gathered(clips[:, p], clips[:, q], clips_all[:, p], clips_all[:, q], temperature, offset)
             for p, q in permutations(range(2 * t), 2)]
    return torch.stack(pairs).sum() / t


def ll_loss(dense: Tensor, temperature: float = TEMPERATURE, reduction: str = "sum",
            batch_size: int | None = None) -> Tensor:
    """L_LL: per video i, NT-Xent between its T dense clips under augmentation 0 and under 1,
    -mean_p log h(G_{i,p}, G'_{i,p}) / sum_q [1_{q != p} h(G_{i,p}, G_{i,q}) + h(G_{i,p}, G'_{i,q})]
    over the 2T anchors; then reduced over videos: "sum" (the reference) or "mean".

    The reference sums over the batch while every other term is a mean, so with "sum" L_LL's weight grows with
    the batch (reference_spec §10.11). `batch_size` is the global batch under torchrun (default: this rank's);
    "sum" is computed as mean x batch_size so that the ranks' average is the global sum."""
    if reduction not in LL_REDUCTIONS:
        raise ValueError(f"reduction must be one of {LL_REDUCTIONS}, got {reduction!r}")
    per_video = nt_xent(dense[:, 0], dense[:, 1], temperature)
    mean = per_video.mean()
    return mean * (batch_size if batch_size is not None else dense.shape[0]) if reduction == "sum" else mean


def gl_loss(sparse_local: Tensor, dense: Tensor, temperature: float = TEMPERATURE) -> Tensor:
    """L_GL: per video i and time cell k, -log h(L_{i,k}, G_{i,k}) / sum_q h(L_{i,k}, G_{i,q}) plus the same
    with L and G swapped, summed over k; averaged over videos and the two directions (sum over k, mean over 2B,
    as the reference) and summed over the 4 pairs (sparse augmentation, dense augmentation)."""
    if sparse_local.shape != dense.shape:
        raise ValueError(f"sparse_local and dense must have one shape (B, 2, T, D), got "
                         f"{tuple(sparse_local.shape)} and {tuple(dense.shape)}")
    b, _, t, _ = dense.shape
    labels = torch.arange(t, device=dense.device).repeat(2 * b)
    total = dense.new_zeros(())
    for s in range(2):
        for d in range(2):
            sim = sparse_local[:, s] @ dense[:, d].transpose(1, 2) / temperature  # (B, T, T): L_k . G_q
            logits = torch.cat([sim, sim.transpose(1, 2)]).reshape(2 * b * t, t)
            total = total + F.cross_entropy(logits, labels, reduction="sum") / (2 * b)
    return total


def tclr_loss(sparse_global: Tensor, sparse_local: Tensor, dense: Tensor, temperature: float = TEMPERATURE,
              ll_reduction: str = "sum", gather: Gather | None = None, offset: int = 0,
              ) -> tuple[Tensor, dict[str, Tensor]]:
    """L_TCLR = L_IC,global + L_IC,local + L_LL + L_GL, unweighted as the reference sums them; returns the total
    and every term (detached) as "ic_global", "ic_local", "ll", "gl"."""
    b, views, t, d = dense.shape
    if views != 2 or sparse_local.shape != dense.shape or sparse_global.shape != (b, 2, d):
        raise ValueError(f"expected sparse_global (B, 2, D), sparse_local and dense (B, 2, T, D), got "
                         f"{tuple(sparse_global.shape)}, {tuple(sparse_local.shape)}, {tuple(dense.shape)}")
    dense_all = gathered(dense, gather)  # one gather serves L_IC's local part and L_LL's global batch size
    terms = {"ic_global": ic_global_loss(sparse_global, temperature, gather, offset),
             "ic_local": _ic_local_gathered(dense, dense_all, temperature, offset),
             "ll": ll_loss(dense, temperature, ll_reduction, dense_all.shape[0]),
             "gl": gl_loss(sparse_local, dense, temperature)}
    total = torch.stack(list(terms.values())).sum()
    return total, {k: v.detach() for k, v in terms.items()}
