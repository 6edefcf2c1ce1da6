"""Numbers for the losses: L_cpc, L_sim, L_sync, L_cocon; distributed equivalence; learning."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch

from train.losses import cocon_loss, cpc_loss, instances, sim_loss, standardised_sync_loss, sync_loss
from train.methods.cocon.config import CoconConfig
from train.methods.cocon.step import cocon_losses
from train.models import CPCModel
from train.models.cpc import CPCOutput, l2_normalise, pool_blocks

Tensor = torch.Tensor


def fake_gather(fulls: list[Tensor], rank: int) -> Callable[[Tensor], Tensor]:
    """A stand-in for the all-gather of rank `rank` of 2 equal ranks: finds which full-batch tensor
    the local one is the rank's slice of, and returns it with the local piece (and its graph) in place."""
    def gather(t: Tensor) -> Tensor:
        m = t.shape[0]
        for full in fulls:
            if full.shape[1:] == t.shape[1:] and torch.equal(full[rank * m:(rank + 1) * m], t.detach()):
                return torch.cat([full[:rank * m].detach(), t, full[(rank + 1) * m:].detach()])
        raise AssertionError("no full-batch tensor holds this local piece")
    return gather


def _unit(*shape: int, dim: int) -> Tensor:
    return l2_normalise(torch.randn(*shape), dim=dim)


# ---------------------------------------------------------------- L_cpc

def test_cpc_loss_by_hand() -> None:
    pred = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 1, 2, 1, 1)
    target = torch.tensor([[0.6, 0.8], [0.0, 1.0]]).view(2, 1, 2, 1, 1)
    tau = 0.5
    # row 0: logits (1*0.6 + 0*0.8, 1*0 + 0*1)/tau = (1.2, 0.0), positive = column 0
    row0 = -1.2 + math.log(math.exp(1.2) + math.exp(0.0))
    # row 1: logits (0*0.6 + 1*0.8, 0*0 + 1*1)/tau = (1.6, 2.0), positive = column 1
    row1 = -2.0 + math.log(math.exp(1.6) + math.exp(2.0))
    loss, stats = cpc_loss(pred, target, temperature=tau)
    assert loss.item() == pytest.approx((row0 + row1) / 2, abs=1e-6)
    assert stats["top1"] == 1.0
    assert stats["pos_logit"] == pytest.approx((1.2 + 2.0) / 2, abs=1e-6)
    with pytest.raises(ValueError):
        cpc_loss(pred, target[:, :, :, :, :0])


def _orthonormal_targets(b: int, p: int, d: int, s: int) -> Tensor:
    """B*P*s*s mutually orthogonal unit cells, (B, P, D, s, s)."""
    q, _ = torch.linalg.qr(torch.randn(d, d))
    cells = q.T[: b * p * s * s]  # rows orthonormal
    return cells.view(b, p, s, s, d).permute(0, 1, 4, 2, 3).contiguous()


def test_cpc_loss_lowest_at_truth_and_top1() -> None:
    torch.manual_seed(0)
    target = _orthonormal_targets(2, 2, 16, 2)
    best, stats = cpc_loss(target, target)
    assert stats["top1"] == 1.0
    assert stats["pos_logit"] == pytest.approx(1 / 0.07, rel=1e-5)
    for scale in (0.05, 0.2, 1.0):
        noisy = l2_normalise(target + scale * torch.randn_like(target), dim=2)
        assert cpc_loss(noisy, target)[0] > best
    assert cpc_loss(_unit(2, 2, 16, 2, 2, dim=2), target)[0] > 5 * best + 1


def test_cpc_loss_invariant_to_batch_permutation() -> None:
    torch.manual_seed(1)
    pred, target = _unit(5, 3, 8, 2, 2, dim=2), _unit(5, 3, 8, 2, 2, dim=2)
    perm = torch.tensor([3, 0, 4, 1, 2])
    a, _ = cpc_loss(pred, target)
    b, _ = cpc_loss(pred[perm], target[perm])
    assert a.item() == pytest.approx(b.item(), abs=1e-5)


def test_cpc_loss_gathered_halves_average_to_full_batch() -> None:
    torch.manual_seed(2)
    target = _unit(4, 3, 8, 2, 2, dim=2)
    pred = l2_normalise(target + 0.3 * torch.randn_like(target), dim=2)  # roughly right
    full, _ = cpc_loss(pred, target)
    halves = [cpc_loss(pred[r * 2:(r + 1) * 2], target[r * 2:(r + 1) * 2],
                       gather=fake_gather([target], r), offset=r * 2)[0] for r in (0, 1)]
    assert (halves[0] + halves[1]).item() / 2 == pytest.approx(full.item(), abs=1e-5)
    wrong = cpc_loss(pred[2:], target[2:], gather=fake_gather([target], 1), offset=0)[0]
    assert wrong > halves[1] + 1  # the offset picks the right positives


# ---------------------------------------------------------------- L_sim, L_sync

# three 2-D unit instances per view
H0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
H1 = torch.tensor([[0.6, 0.8], [0.8, -0.6], [-1.0, 0.0]])


def test_sim_loss_by_hand() -> None:
    # same-instance cosines: a0.b0 = 0.6, a1.b1 = -0.6, a2.b2 = -0.6 -> D = 0.4, 1.6, 1.6
    pos = (0.4 + 1.6 + 1.6) / 3
    # a != b cosines (= 1 - D): a0.b1 = 0.8, a0.b2 = -1, a1.b0 = 0.8, a1.b2 = 0, a2.b0 = 1.0, a2.b1 = 0
    neg = (0.8 + 0 + 0.8 + 0 + 1.0 + 0) / 6
    loss, stats = sim_loss(H0, H1, mu=0.5)
    assert loss.item() == pytest.approx(pos + 0.5 * neg, abs=1e-6)
    assert stats["pos_cos"] == pytest.approx((0.6 - 0.6 - 0.6) / 3, abs=1e-6)
    assert stats["neg_cos"] == pytest.approx((0.8 - 1 + 0.8 + 0 + 1.0 + 0) / 6, abs=1e-6)


def test_sync_loss_by_hand_squared_and_l1() -> None:
    # view 0 distances: D(a0,a1) = 1 - 0 = 1, D(a0,a2) = 1 - 0.6 = 0.4, D(a1,a2) = 1 - 0.8 = 0.2
    # view 1 distances: D(b0,b1) = 1 - 0 = 1, D(b0,b2) = 1 + 0.6 = 1.6, D(b1,b2) = 1 + 0.8 = 1.8
    # gaps 0, -1.2, -1.6, each off-diagonal pair twice, diagonal 0, over 3 x 3 = 9 entries
    squared, _ = sync_loss(H0, H1)
    l1, stats = sync_loss(H0, H1, penalty="l1")
    assert squared.item() == pytest.approx(2 * (0 + 1.44 + 2.56) / 9, abs=1e-6)
    assert l1.item() == pytest.approx(2 * (0 + 1.2 + 1.6) / 9, abs=1e-6)
    assert stats["abs_gap"] == pytest.approx(l1.item(), abs=1e-6)
    with pytest.raises(ValueError):
        sync_loss(H0, H1, penalty="huber")


def test_standardised_sync_by_hand() -> None:
    # dimension 0: view 0 = (1, 2, 3), view 1 = (2, 4, 6) -> the same z-scores (-1.2247, 0, 1.2247): corr 1
    # dimension 1: view 0 = (0, 0, 3), view 1 = (3, 0, 0) -> z = (-0.7071, -0.7071, 1.4142) and its reverse:
    # squared differences 4.5, 0, 4.5 -> mean 3 = 2 (1 - corr), corr = -0.5
    h0 = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 3.0]])
    h1 = torch.tensor([[2.0, 3.0], [4.0, 0.0], [6.0, 0.0]])
    loss, stats = standardised_sync_loss(h0, h1)
    assert loss.item() == pytest.approx((0 + 0 + 0 + 4.5 + 0 + 4.5) / 6, rel=1e-5)
    assert stats["corr"] == pytest.approx((1 - 0.5) / 2, rel=1e-5)


def test_standardised_sync_ignores_scale_and_offset_and_a_constant_view_cannot_meet_it() -> None:
    torch.manual_seed(11)
    h = torch.randn(16, 8)
    shifted = 3.0 * h + torch.arange(8.0)          # each dimension scaled and moved: the same z-scores
    assert standardised_sync_loss(h, shifted)[0].item() == pytest.approx(0.0, abs=1e-5)
    # the relational form is met by two views that are the same for every instance; this one is not
    constant = _unit(1, 8, dim=1).expand(16, 8)
    assert sync_loss(constant, constant)[0].item() == pytest.approx(0.0, abs=1e-7)
    assert standardised_sync_loss(h, constant)[0].item() == pytest.approx(1.0, abs=1e-4)   # mean z^2 of h
    nearly = l2_normalise(constant + 1e-2 * torch.randn(16, 8), dim=1)   # near-collapsed (cos ~0.999) still counts
    assert standardised_sync_loss(h, nearly)[0].item() > 1.5


def test_zero_for_agreeing_views_positive_otherwise() -> None:
    torch.manual_seed(3)
    ortho = torch.eye(4)[:3]
    assert sim_loss(ortho, ortho)[0].item() == pytest.approx(0.0, abs=1e-7)
    assert sim_loss(H0, H0)[0] > 0  # identical views, but a0.a2 and a1.a2 > 0 are pushed apart
    h = _unit(6, 5, dim=1)
    assert sync_loss(h, h)[0].item() == pytest.approx(0.0, abs=1e-7)
    assert sync_loss(h, h, penalty="l1")[0].item() == pytest.approx(0.0, abs=1e-7)
    assert sync_loss(h, _unit(6, 5, dim=1))[0] > 1e-3
    # squared < l1 when every gap is below 1, the other way round above 1
    small = l2_normalise(h + 0.1 * torch.randn_like(h), dim=1)
    assert sync_loss(h, small)[0] < sync_loss(h, small, penalty="l1")[0]


def test_instances_block_and_clip() -> None:
    pooled = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [0.6, 0.8]]])  # (B=2, N=2, D=2)
    blocks = instances(pooled, "block")
    assert torch.equal(blocks, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.6, 0.8]]))
    clips = instances(pooled, "clip")
    r = 1 / math.sqrt(2) / (1 + 1e-5)
    torch.testing.assert_close(clips, torch.tensor([[r, r], [0.6, 0.8]]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        instances(pooled, "frame")


def test_sim_and_sync_gathered_halves_average_to_full_batch() -> None:
    torch.manual_seed(4)
    h0, h1 = _unit(6, 4, dim=1), _unit(6, 4, dim=1)
    for fn in (sim_loss, sync_loss, standardised_sync_loss):
        full = fn(h0, h1)[0].item()
        parts = [fn(h0[r * 3:(r + 1) * 3], h1[r * 3:(r + 1) * 3], gather=fake_gather([h0, h1], r),
                    offset=r * 3)[0].item() for r in (0, 1)]
        assert sum(parts) / 2 == pytest.approx(full, abs=1e-6)


# ---------------------------------------------------------------- L_cocon

def test_cocon_loss_three_views_sums_terms() -> None:
    torch.manual_seed(5)
    views = ["seg", "flow", "rgb"]
    pooled = {v: _unit(2, 4, 8, dim=2) for v in views}
    cpc = {v: torch.tensor(float(i + 1)) for i, v in enumerate(views)}
    total, terms, stats = cocon_loss(cpc, pooled, lambda_sim=0.3, lambda_sync=2.0, mu=0.5)
    pairs = ["flow-rgb", "flow-seg", "rgb-seg"]
    assert sorted(terms) == sorted([f"cpc/{v}" for v in views] + [f"sim/{p}" for p in pairs]
                                   + [f"sync/{p}" for p in pairs])
    assert sorted(stats) == sorted([f"pos_cos/{p}" for p in pairs] + [f"neg_cos/{p}" for p in pairs])
    expected = 6.0 + sum(0.3 * terms[f"sim/{p}"] + 2.0 * terms[f"sync/{p}"] for p in pairs)
    assert total.item() == pytest.approx(float(expected), abs=1e-5)
    h = {v: pooled[v].flatten(0, 1) for v in views}
    assert terms["sim/flow-rgb"].item() == pytest.approx(sim_loss(h["flow"], h["rgb"], mu=0.5)[0].item())
    assert terms["sync/rgb-seg"].item() == pytest.approx(sync_loss(h["rgb"], h["seg"])[0].item())
    single, single_terms, _ = cocon_loss({"rgb": cpc["rgb"]}, {"rgb": pooled["rgb"]})
    assert single.item() == 3.0 and list(single_terms) == ["cpc/rgb"]
    with pytest.raises(ValueError):
        cocon_loss(cpc, {"rgb": pooled["rgb"]})
    with pytest.raises(ValueError):
        cocon_loss(cpc, pooled, penalty="cube")


@pytest.mark.parametrize("granularity", ["block", "clip"])
def test_cocon_loss_offset_in_clips(granularity: str) -> None:
    torch.manual_seed(6)
    pooled = {v: _unit(4, 3, 8, dim=2) for v in ("flow", "rgb")}
    zero = {v: torch.tensor(0.0) for v in pooled}
    full, _, _ = cocon_loss(zero, pooled, granularity=granularity)
    fulls = [instances(p, granularity) for p in pooled.values()]
    parts = [cocon_loss(zero, {v: p[r * 2:(r + 1) * 2] for v, p in pooled.items()},
                        granularity=granularity, gather=fake_gather(fulls, r), offset=r * 2)[0]
             for r in (0, 1)]
    assert (parts[0] + parts[1]).item() / 2 == pytest.approx(full.item(), abs=1e-5)


def test_cocon_loss_standardised_sync_form_and_its_stat() -> None:
    torch.manual_seed(12)
    pooled = {v: _unit(4, 3, 8, dim=2) for v in ("flow", "rgb")}
    zero = {v: torch.zeros(()) for v in pooled}
    total, terms, stats = cocon_loss(zero, pooled, lambda_sim=0.0, lambda_sync=2.0, sync_form="standardised",
                                     granularity="clip")
    h = {v: instances(p, "clip") for v, p in pooled.items()}
    value, pair_stats = standardised_sync_loss(h["flow"], h["rgb"])
    assert terms["sync/flow-rgb"].item() == pytest.approx(value.item(), rel=1e-6)
    assert total.item() == pytest.approx(2.0 * value.item(), rel=1e-6)
    assert stats["sync_corr/flow-rgb"] == pytest.approx(pair_stats["corr"], rel=1e-6)
    assert terms["sync/flow-rgb"].item() != pytest.approx(sync_loss(h["flow"], h["rgb"])[0].item(), rel=1e-3)
    with pytest.raises(ValueError, match="sync_form"):
        cocon_loss(zero, pooled, sync_form="whitened")
    step = cocon_losses(replace(CoconConfig().loss, sync_form="standardised", granularity="clip"),
                        {v: CPCOutput(pred=_unit(4, 1, 8, 1, 1, dim=2), target=_unit(4, 1, 8, 1, 1, dim=2),
                                      features=p[..., None, None], context=_unit(4, 8, 1, 1, dim=1))
                         for v, p in pooled.items()}, cooperative=True, offset=0)
    assert step.terms["sync/flow-rgb"] == pytest.approx(value.item(), rel=1e-5)


def test_cocon_gradients_reach_both_encoders() -> None:
    torch.manual_seed(7)
    models = {"flow": CPCModel(2, width=0.0625, num_blocks=4, pred_steps=2),
              "rgb": CPCModel(3, width=0.0625, num_blocks=4, pred_steps=2)}
    outs = {v: m(torch.randn(2, 4, m.in_channels, 5, 32, 32)) for v, m in models.items()}
    pooled = {v: pool_blocks(o.features) for v, o in outs.items()}
    # cooperative terms alone (CPC losses held at zero) must move both encoders
    zero = {v: torch.zeros(()) for v in models}
    total, _, _ = cocon_loss(zero, pooled)
    total.backward(retain_graph=True)
    for m in models.values():
        grad = m.encoder.stem[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0
        m.zero_grad(set_to_none=True)
    cpc = {v: cpc_loss(o.pred, o.target)[0] for v, o in outs.items()}
    cocon_loss(cpc, pooled)[0].backward()
    for m in models.values():
        assert all(p.grad is not None for p in m.encoder.parameters())
        assert m.predictor[0].weight.grad.abs().sum() > 0


def test_a_teacher_view_gets_no_gradient_from_the_cooperative_terms_and_the_values_stay() -> None:
    torch.manual_seed(9)
    base = {v: _unit(3, 4, 8, dim=2) for v in ("flow", "rgb")}
    zero = {v: torch.zeros(()) for v in base}
    values = []
    for teacher in ("", "flow"):
        pooled = {v: p.clone().requires_grad_(True) for v, p in base.items()}
        total, terms, _ = cocon_loss(zero, pooled, lambda_sync=10.0, penalty="l1", teacher=teacher)
        total.backward()
        values.append((total.item(), terms["sim/flow-rgb"].item(), terms["sync/flow-rgb"].item()))
        assert pooled["rgb"].grad.abs().sum() > 0
        flow_grad = pooled["flow"].grad
        assert (flow_grad is not None and flow_grad.abs().sum() > 0) == (teacher == "")
    assert values[0] == pytest.approx(values[1], abs=1e-6)
    with pytest.raises(ValueError, match="teacher"):
        cocon_loss(zero, base, teacher="seg")


def test_the_step_puts_the_cooperative_terms_on_the_context_and_passes_the_teacher() -> None:
    torch.manual_seed(10)
    outs = {v: CPCOutput(pred=_unit(3, 2, 8, 2, 2, dim=2), target=_unit(3, 2, 8, 2, 2, dim=2),
                         features=_unit(3, 4, 8, 2, 2, dim=2).requires_grad_(True),
                         context=_unit(3, 8, 2, 2, dim=1).requires_grad_(True)) for v in ("flow", "rgb")}
    loss = replace(CoconConfig().loss, granularity="context", teacher="flow", sync_penalty="l1")
    result = cocon_losses(loss, outs, cooperative=True, offset=0)
    h = {v: pool_blocks(o.context.unsqueeze(1)).flatten(0, 1) for v, o in outs.items()}
    assert result.terms["sim/flow-rgb"] == pytest.approx(sim_loss(h["flow"], h["rgb"])[0].item(), rel=1e-6)
    assert result.terms["sync/flow-rgb"] == pytest.approx(sync_loss(h["flow"], h["rgb"], "l1")[0].item(), rel=1e-6)
    blocks = cocon_losses(replace(loss, granularity="block"), outs, cooperative=True, offset=0)
    assert blocks.terms["sim/flow-rgb"] != pytest.approx(result.terms["sim/flow-rgb"], rel=1e-3)
    result.total.backward()
    assert outs["rgb"].context.grad.abs().sum() > 0 and outs["flow"].context.grad is None
    assert outs["rgb"].features.grad is None   # the blocks' features enter L_cpc through pred/target only


# ---------------------------------------------------------------- learning

def _optimise(loss_fn: Callable[[], Tensor], params: list[Tensor], steps: int = 20,
              lr: float = 0.05) -> tuple[float, float]:
    opt = torch.optim.Adam(params, lr=lr)
    first = last = float("nan")
    for i in range(steps):
        loss = loss_fn()
        if i == 0:
            first = loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = loss_fn().item()
    return first, last


def test_losses_decrease_when_optimising_embeddings() -> None:
    torch.manual_seed(8)
    a = torch.randn(3, 2, 8, 2, 2, requires_grad=True)
    target = _unit(3, 2, 8, 2, 2, dim=2)
    first, last = _optimise(lambda: cpc_loss(l2_normalise(a, dim=2), target)[0], [a])
    assert last < first / 4  # about 8x here
    x, y = torch.randn(12, 16, requires_grad=True), torch.randn(12, 16, requires_grad=True)
    first, last = _optimise(lambda: sim_loss(l2_normalise(x), l2_normalise(y))[0], [x, y])
    assert last < first / 4  # about 10x here
    fixed = _unit(12, 16, dim=1)
    first, last = _optimise(lambda: sync_loss(l2_normalise(x), fixed)[0], [x])
    assert last < first / 10  # about 50x here
    first, last = _optimise(lambda: standardised_sync_loss(l2_normalise(x), fixed)[0], [x], steps=60)
    assert last < first / 10  # about 30x here


def test_tiny_cpc_model_learns() -> None:
    torch.manual_seed(9)
    model = CPCModel(2, width=0.0625, num_blocks=4, pred_steps=2, dropout=0.0)
    video = torch.randn(4, 4, 2, 5, 32, 32)
    first, last = _optimise(lambda: cpc_loss(*(lambda o: (o.pred, o.target))(model(video)))[0],
                            list(model.parameters()), lr=3e-3)
    assert last < first / 4  # about 14x here
