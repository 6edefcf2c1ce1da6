"""Numbers for TCLR's losses: the reference's own values (tclr_reference.md §5), a hand-computed NT-Xent,
the L_LL reduction option, negatives gathered over ranks, and learning."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from train.losses.tclr import gl_loss, ic_global_loss, ic_local_loss, ll_loss, nt_xent, tclr_loss

Tensor = torch.Tensor

# tclr_reference.md §5: the reference's train_epoch on one batch of seeded unit vectors (fp32, tau = 0.1).
REFERENCE = [  # (B, seed, total, ic_global (ic2), ic_local (ic1), ll, gl)
    (4, 0, 71.206032, 2.027271, 33.491261, 8.190573, 27.496927),
    (8, 1, 88.109948, 2.597689, 42.252350, 17.294098, 25.965811),
    (40, 2, 187.015752, 4.571137, 66.341118, 89.250504, 26.852993),
]


def reference_inputs(batch: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The §5 draw order from one generator: for aug 0, 1 the sparse clip's (gsr, l0..l3), then for aug 0, 1
    the dense clips 0..3; each normalize(randn(B, 128)). Returned as (B, 2, D), (B, 2, 4, D), (B, 2, 4, D)."""
    g = torch.Generator().manual_seed(seed)

    def unit() -> Tensor:
        return F.normalize(torch.randn(batch, 128, generator=g), dim=-1)

    sparse = [[unit() for _ in range(5)] for _ in range(2)]
    dense = [[unit() for _ in range(4)] for _ in range(2)]
    sparse_global = torch.stack([sparse[a][0] for a in range(2)], dim=1)
    sparse_local = torch.stack([torch.stack(sparse[a][1:], dim=1) for a in range(2)], dim=1)
    return sparse_global, sparse_local, torch.stack([torch.stack(dense[a], dim=1) for a in range(2)], dim=1)


@pytest.mark.parametrize("batch,seed,total,ic2,ic1,ll,gl", REFERENCE)
def test_every_term_reproduces_the_reference_values(batch: int, seed: int, total: float, ic2: float, ic1: float,
                                                    ll: float, gl: float) -> None:
    sparse_global, sparse_local, dense = reference_inputs(batch, seed)
    assert ic_global_loss(sparse_global).item() == pytest.approx(ic2, abs=1e-5)
    assert ic_local_loss(dense).item() == pytest.approx(ic1, abs=1e-5)
    assert ll_loss(dense).item() == pytest.approx(ll, abs=1e-5)
    assert gl_loss(sparse_local, dense).item() == pytest.approx(gl, abs=1e-5)
    loss, terms = tclr_loss(sparse_global, sparse_local, dense)
    assert [terms[k].item() for k in ("ic_global", "ic_local", "ll", "gl")] == pytest.approx(
        [ic2, ic1, ll, gl], abs=1e-5)
    assert loss.item() == pytest.approx(total, rel=1e-7)  # 187.0 in fp32 has a 1.5e-5 spacing


def test_nt_xent_by_hand() -> None:
    z_i = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_j = torch.tensor([[0.6, 0.8], [0.8, -0.6]])
    tau = 0.5
    # R = [i0, i1, j0, j1]; dot products: i0.i1 = 0, i0.j0 = .6, i0.j1 = .8, i1.j0 = .8, i1.j1 = -.6, j0.j1 = 0
    # anchor i0: positive j0 (.6), others i1 (0), j1 (.8); i1: positive j1 (-.6), others i0 (0), j0 (.8)
    # anchor j0: positive i0 (.6), others i1 (.8), j1 (0); j1: positive i1 (-.6), others i0 (.8), j0 (0)
    def row(pos: float, *neg: float) -> float:
        return -pos / tau + math.log(sum(math.exp(x / tau) for x in (pos, *neg)))
    expected = (row(.6, 0, .8) + row(-.6, 0, .8) + row(.6, .8, 0) + row(-.6, .8, 0)) / 4
    assert nt_xent(z_i, z_j, temperature=tau).item() == pytest.approx(expected, abs=1e-6)
    assert nt_xent(z_j, z_i, temperature=tau).item() == pytest.approx(expected, abs=1e-6)
    batched = nt_xent(torch.stack([z_i, z_j]), torch.stack([z_j, z_i]), temperature=tau)
    assert batched.shape == (2,) and batched.tolist() == pytest.approx([expected, expected], abs=1e-6)
    with pytest.raises(ValueError):
        nt_xent(z_i, z_j[:1])


def test_ll_mean_is_sum_over_batch() -> None:
    _, _, dense = reference_inputs(8, 3)
    mean, total = ll_loss(dense, reduction="mean"), ll_loss(dense, reduction="sum")
    assert mean.item() == pytest.approx(total.item() / 8, rel=1e-6)
    assert tclr_loss(*reference_inputs(8, 3), ll_reduction="mean")[1]["ll"].item() == pytest.approx(mean.item())
    with pytest.raises(ValueError):
        ll_loss(dense, reduction="max")


def test_gather_identity_on_one_process_changes_nothing() -> None:
    inputs = reference_inputs(4, 0)
    plain, plain_terms = tclr_loss(*inputs)
    same, same_terms = tclr_loss(*inputs, gather=lambda t: t, offset=0)
    assert same.item() == plain.item()
    assert {k: v.item() for k, v in same_terms.items()} == {k: v.item() for k, v in plain_terms.items()}


def graph_gather(fulls: list[Tensor], rank: int) -> Callable[[Tensor], Tensor]:
    """A stand-in for `gather_with_grad` on rank `rank` of 2: the full-batch tensor whose rank slice the local
    one is, with its whole graph, so that backward of the ranks' summed losses is what DDP gets after the
    gather's backward (a sum over ranks per piece) and the average over ranks."""
    def gather(t: Tensor) -> Tensor:
        m = t.shape[0]
        for full in fulls:
            if full.shape[1:] == t.shape[1:] and torch.equal(full[rank * m:(rank + 1) * m].detach(), t.detach()):
                return full
        raise AssertionError("no full-batch tensor holds this local piece")
    return gather


def test_gathered_halves_average_to_the_full_batch_loss_and_gradients() -> None:
    inputs = [x.requires_grad_() for x in reference_inputs(8, 4)]
    sparse_global, sparse_local, dense = inputs
    full, full_terms = tclr_loss(*inputs)
    expected_grads = torch.autograd.grad(full, inputs)
    parts, part_terms = [], []
    for r in (0, 1):
        rows = slice(4 * r, 4 * r + 4)
        fulls = [sparse_global, dense]
        loss, terms = tclr_loss(sparse_global[rows], sparse_local[rows], dense[rows],
                                gather=graph_gather(fulls, r), offset=4 * r)
        parts.append(loss)
        part_terms.append(terms)
    assert ((parts[0] + parts[1]) / 2).item() == pytest.approx(full.item(), rel=1e-6)
    for k in full_terms:
        assert ((part_terms[0][k] + part_terms[1][k]) / 2).item() == pytest.approx(full_terms[k].item(), rel=1e-6)
    grads = torch.autograd.grad((parts[0] + parts[1]) / 2, inputs)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    wrong, _ = tclr_loss(sparse_global[4:], sparse_local[4:], dense[4:], gather=graph_gather(fulls, 1), offset=0)
    assert wrong > parts[1] + 1  # the offset picks the right positives


def test_free_embeddings_learn() -> None:
    torch.manual_seed(0)
    raw = [torch.randn(6, 2, 128, requires_grad=True), torch.randn(6, 2, 4, 128, requires_grad=True),
           torch.randn(6, 2, 4, 128, requires_grad=True)]
    opt = torch.optim.Adam(raw, lr=0.05)
    losses = []
    for _ in range(20):
        loss, _ = tclr_loss(*(F.normalize(x, dim=-1) for x in raw))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses  # measured: 76.8 -> 2.9
