"""The authors'-code settings of the losses and models against the reference values measured by running the
authors' code (research/cocon_parity.md, "Reproducible reference values"), and what each model setting does."""

from __future__ import annotations

import pytest
import torch
from train.losses import cocon_loss, cpc_loss, instances, sim_loss, sync_loss
from train.models import CPCModel, l2_normalise, pool_blocks
from train.models.resnet2d3d import resnet2d3d

TAU = 0.07


def _features(seed: int, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """randn(B, N, D, s, s) from its own generator, L2-normalised per cell over D (eps 1e-5)."""
    b, n, d, s = shape
    x = torch.randn(b, n, d, s, s, generator=torch.Generator().manual_seed(seed))
    return x / (x.norm(dim=2, keepdim=True) + 1e-5)


def _pooled(seed: int, shape: tuple[int, int, int, int], pad_odd: bool) -> torch.Tensor:
    return instances(pool_blocks(_features(seed, shape), pad_odd=pad_odd), "block")


def _close(value: torch.Tensor, expected: float) -> None:
    # Relative 1e-6, or 3e-8 absolute for the smallest values: the doc prints 8 decimals of float32 sums and
    # measured L_sync against CoCon's coop to 3e-8.
    assert value.item() == pytest.approx(expected, rel=1e-6, abs=3e-8)


A4, A2, A7 = (4, 8, 256, 4), (4, 8, 256, 2), (4, 8, 256, 7)
# (view a shape, seed, view b shape, seed, CoCon coop/10, CoCon sim/10, our L_sim, our L_sync squared)
COOPERATIVE_ROWS = [
    (A4, 10, A4, 20, 0.00916066, 0.50060463, 1.00120926, 0.00013638),
    (A2, 11, A2, 21, 0.06843991, 0.51048851, 1.02097702, 0.00749910),
    (A4, 13, A2, 23, 0.87177477, 0.51361947, 1.02723897, 0.78829640),
    ((2, 8, 256, 4), 14, (2, 8, 256, 4), 24, 0.01165891, 0.50097866, 1.00195730, 0.00022181),
]


@pytest.mark.parametrize("shape_a, seed_a, shape_b, seed_b, coop, sim_authors, sim_ours, sync_ours",
                         COOPERATIVE_ROWS)
def test_cooperative_terms_match_the_authors_code(shape_a, seed_a, shape_b, seed_b, coop, sim_authors,
                                                  sim_ours, sync_ours) -> None:
    for pad_odd in (False, True):  # the pooling setting changes nothing at 4x4 and 2x2 cells
        ha, hb = _pooled(seed_a, shape_a, pad_odd), _pooled(seed_b, shape_b, pad_odd)
        _close(sync_loss(ha, hb, penalty="l1")[0], coop)
        _close(sim_loss(ha, hb, mu=1.0, scale="authors")[0], sim_authors)
        _close(sim_loss(ha, hb, mu=1.0)[0], sim_ours)
        _close(sync_loss(ha, hb)[0], sync_ours)


def test_padded_pooling_at_7x7_cells_matches_the_authors_code() -> None:
    ha, hb = _pooled(12, A7, pad_odd=True), _pooled(22, A7, pad_odd=True)
    _close(sync_loss(ha, hb, penalty="l1")[0], 0.00277543)
    _close(sim_loss(ha, hb, mu=1.0, scale="authors")[0], 0.50009336)
    # Our default (ceil_mode) groups other cells at 7x7: the doc's values of our pooling.
    ha, hb = _pooled(12, A7, pad_odd=False), _pooled(22, A7, pad_odd=False)
    _close(sync_loss(ha, hb, penalty="l1")[0], 0.00260860)
    _close(sim_loss(ha, hb, mu=1.0)[0], 1.00007820)
    _close(sync_loss(ha, hb)[0], 0.00001087)


def test_padded_pooling_by_hand_on_a_7x7_map() -> None:
    # Channel 0 holds its cell's index 0..48 (row-major), channel 1 the constant 32, so the pooled vector's
    # ratio is channel 0's pooled value / 32. Padded (CoCon): rows and columns pool as {0}, {1,2}, {3,4},
    # {5,6} -> maxima at 7r + c, r, c in (0, 2, 4, 6); the next 2x2 pool keeps r, c in (2, 6) -> 16, 20, 44,
    # 48, mean 32. ceil_mode: {0,1}, {2,3}, {4,5}, {6} -> r, c in (1, 3, 5, 6), then (3, 6) -> 24, 27, 45,
    # 48, mean 36.
    y = torch.stack([torch.arange(49.0).reshape(7, 7), torch.full((7, 7), 32.0)]).reshape(1, 1, 2, 7, 7)
    padded, ceil = pool_blocks(y, pad_odd=True)[0, 0], pool_blocks(y, pad_odd=False)[0, 0]
    assert (padded[0] / padded[1]).item() == pytest.approx(32.0 / 32.0)
    assert (ceil[0] / ceil[1]).item() == pytest.approx(36.0 / 32.0)
    # An even map pools the same either way.
    even = torch.randn(2, 3, 8, 4, 4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(pool_blocks(even, pad_odd=True), pool_blocks(even), rtol=0, atol=0)


CPC_ROWS = [  # (B, P, cells, D), seed, DPC raw = ours at temperature 1, CoCon tau 0.07, ours at tau 0.07
    ((4, 3, 16, 32), 0, 15.9115324, 95.0164261, 8.0749006),
    ((4, 3, 16, 256), 1, 44.0516090, 35.1696358, 5.6710887),
    ((2, 3, 49, 64), 2, 23.9037743, 73.5775375, 7.3576412),
]


@pytest.mark.parametrize("shape, seed, dpc, cocon, ours", CPC_ROWS)
def test_cpc_temperature_applied_twice_matches_the_authors_code(shape, seed, dpc, cocon, ours) -> None:
    b, p, cells, d = shape
    s = int(cells ** 0.5)
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(b, p, d, s, s, generator=g)
    gt = torch.randn(b, p, d, s, s, generator=g)
    _close(cpc_loss(pred, gt, temperature=1.0)[0], dpc)
    pred, gt = l2_normalise(pred, dim=2), l2_normalise(gt, dim=2)
    _close(cpc_loss(pred, gt, temperature=TAU, temperature_twice=True)[0], cocon)
    _close(cpc_loss(pred, gt, temperature=TAU * TAU)[0], cocon)
    _close(cpc_loss(pred, gt, temperature=TAU)[0], ours)


def test_the_whole_objective_with_the_authors_settings_sums_like_their_trainer() -> None:
    # CoCon's total (model_trainer.py L633-639): sum of L_cpc (tau^2) + 10 * coop + 10 * sim, per pair. With
    # the first cooperative row's features and the first L_cpc row standing in for both views' L_cpc:
    # 95.0164261 + 35.1696358 + 10 * 0.50060463 + 10 * 0.00916066 = 135.2836890.
    pooled = {"flow": pool_blocks(_features(10, A4)), "rgb": pool_blocks(_features(20, A4))}
    cpc = {"flow": torch.tensor(95.0164261), "rgb": torch.tensor(35.1696358)}
    expected = 95.0164261 + 35.1696358 + 10 * 0.50060463 + 10 * 0.00916066
    total, terms, _ = cocon_loss(cpc, pooled, lambda_sim=10.0, lambda_sync=10.0, mu=1.0, penalty="l1",
                                 sim_scale="authors")
    assert total.item() == pytest.approx(expected, rel=1e-6)
    # The same objective as the paper-scaled L_sim at lambda_sim 5 (cocon_parity.md: "their 10 is our 5").
    same, _, _ = cocon_loss(cpc, pooled, lambda_sim=5.0, lambda_sync=10.0, mu=1.0, penalty="l1")
    assert same.item() == pytest.approx(total.item(), rel=1e-6)
    assert terms["sim/flow-rgb"].item() == pytest.approx(0.50060463, rel=1e-6)


def test_unknown_settings_are_named() -> None:
    h = torch.eye(4)
    with pytest.raises(ValueError, match="sim_scale"):
        sim_loss(h, h, scale="half")
    with pytest.raises(ValueError, match="context_norm"):
        CPCModel(3, width=0.125, context_norm="never")
    with pytest.raises(ValueError, match="predictor_init"):
        CPCModel(3, width=0.125, predictor_init="xavier")


# ---------------------------------------------------------------- model settings


def _clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 4, 3, 5, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_normalising_the_context_once_changes_predictions_but_not_the_encoder() -> None:
    torch.manual_seed(0)
    every = CPCModel(3, width=0.125, num_blocks=4, pred_steps=1).eval()
    once = CPCModel(3, width=0.125, num_blocks=4, pred_steps=1, context_norm="once").eval()
    once.load_state_dict(every.state_dict())
    x = _clip()
    a, b = every(x), once(x)
    torch.testing.assert_close(a.features, b.features, rtol=0, atol=0)
    # The context is unit-length per cell either way, but it is another vector: the GRU's later steps see an
    # un-normalised state.
    torch.testing.assert_close(b.context.norm(dim=1), torch.ones_like(b.context[:, 0]), rtol=0, atol=1e-4)
    assert (a.pred - b.pred).abs().max().item() > 1e-3
    # With a single context block nothing differs: one step is normalised once in both.
    single = _clip(1)[:, :2]
    torch.testing.assert_close(every(single).pred, once(single).pred)


def test_orthogonal_predictor_init_is_orthogonal_with_the_chosen_bias() -> None:
    torch.manual_seed(0)
    cocon = CPCModel(3, width=0.125, predictor_init="orthogonal")
    dpc = CPCModel(3, width=0.125, predictor_init="orthogonal_zero_bias")
    default = CPCModel(3, width=0.125)
    d = cocon.out_dim
    for model in (cocon, dpc):
        for conv in (model.predictor[0], model.predictor[2]):
            w = conv.weight.detach().reshape(d, d)
            torch.testing.assert_close(w @ w.T, torch.eye(d), rtol=0, atol=1e-5)
    assert all(conv.bias.abs().sum().item() > 0 for conv in (cocon.predictor[0], cocon.predictor[2]))
    assert all(conv.bias.abs().sum().item() == 0 for conv in (dpc.predictor[0], dpc.predictor[2]))
    w = default.predictor[0].weight.detach().reshape(d, d)
    assert (w @ w.T - torch.eye(d)).abs().max().item() > 0.5  # PyTorch's default is far from orthogonal


def test_batchnorm_without_running_statistics_keeps_no_buffers_and_uses_the_batch_at_eval() -> None:
    torch.manual_seed(0)
    tracked = resnet2d3d(18, 3, 0.125)
    untracked = resnet2d3d(18, 3, 0.125, track_running_stats=False)
    buffers = [name for name, _ in untracked.named_buffers()]
    assert buffers == [] and any("running_mean" in name for name, _ in tracked.named_buffers())
    untracked.load_state_dict(tracked.state_dict(), strict=False)
    x = torch.randn(3, 3, 5, 64, 64, generator=torch.Generator().manual_seed(2)) * 4 + 1
    train_out = untracked.train()(x)
    eval_out = untracked.eval()(x)
    torch.testing.assert_close(eval_out, train_out)  # batch statistics in both modes
    # The tracked net at eval uses its running averages (mean 0, var 1 at init): another output.
    assert (tracked.eval()(x) - eval_out).abs().max().item() > 1e-2
    model = CPCModel(3, width=0.125, track_running_stats=False)
    assert not [name for name, _ in model.encoder.named_buffers()]
