"""Numbers for the per-view networks: 2D-3D ResNet, ConvGRU, CPC model, Pool(.)."""

from __future__ import annotations

import math

import pytest
import torch

from train.models import ConvGRU, CPCModel, CPCOutput, resnet2d3d
from train.models.cpc import l2_normalise, pool_blocks

TINY = 0.0625  # c1 = 4, D = 16


@pytest.mark.parametrize("depth", [18, 34])
@pytest.mark.parametrize("width,dim", [(1.0, 256), (0.125, 32)])
@pytest.mark.parametrize("px", [128, 64])
def test_resnet_output_shape(depth: int, width: float, dim: int, px: int) -> None:
    model = resnet2d3d(depth, in_channels=2, width=width).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 2, 5, px, px))
    assert model.out_dim == dim
    assert out.shape == (1, dim, 2, px // 32, px // 32)


def test_resnet_rejects_unknown_depth() -> None:
    with pytest.raises(ValueError, match="depth"):
        resnet2d3d(50)


def test_resnet_last_block_has_no_final_relu() -> None:
    torch.manual_seed(0)
    model = resnet2d3d(18, width=TINY).eval()
    seen: dict[str, torch.Tensor] = {}
    model.layer3.register_forward_hook(lambda m, i, o: seen.__setitem__("layer3", o))
    model.layer4[0].register_forward_hook(lambda m, i, o: seen.__setitem__("layer4.0", o))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 5, 64, 64))
    assert seen["layer3"].min() >= 0 and seen["layer4.0"].min() >= 0  # ReLU'd block outputs
    assert (out < 0).float().mean() > 0.1  # the last block's output is not rectified


def test_resnet18_parameter_count_by_hand() -> None:
    c, cin = 64, 3
    bn = lambda ch: 2 * ch  # noqa: E731  (weight + bias)
    conv2d = lambda i, o: i * o * 1 * 3 * 3  # noqa: E731  (1x3x3 kernel, no bias)
    conv3d = lambda i, o: i * o * 3 * 3 * 3  # noqa: E731
    stem = cin * c * 7 * 7 + bn(c)
    # layer1: 2 blocks of two 64->64 (1,3,3) convs, no shortcut conv
    layer1 = 2 * (2 * conv2d(c, c) + 2 * bn(c))
    # layer2: first block 64->128 with 1x1x1 shortcut conv + BN, second block 128->128
    layer2 = (conv2d(c, 2 * c) + conv2d(2 * c, 2 * c) + 2 * bn(2 * c) + c * 2 * c + bn(2 * c)) \
        + (2 * conv2d(2 * c, 2 * c) + 2 * bn(2 * c))
    # layer3: 3D, 128->256 with shortcut, then 256->256
    layer3 = (conv3d(2 * c, 4 * c) + conv3d(4 * c, 4 * c) + 2 * bn(4 * c) + 2 * c * 4 * c + bn(4 * c)) \
        + (2 * conv3d(4 * c, 4 * c) + 2 * bn(4 * c))
    # layer4: 3D, 256->256 but stride 2, so the first block has a shortcut conv too
    layer4 = (2 * conv3d(4 * c, 4 * c) + 2 * bn(4 * c) + 4 * c * 4 * c + bn(4 * c)) \
        + (2 * conv3d(4 * c, 4 * c) + 2 * bn(4 * c))
    by_hand = stem + layer1 + layer2 + layer3 + layer4
    assert by_hand == 14_057_536
    counted = sum(p.numel() for p in resnet2d3d(18, 3, 1.0).parameters())
    assert abs(counted - by_hand) <= 0.01 * by_hand


def _set_conv(conv: torch.nn.Conv2d, wx: float, wh: float, b: float) -> None:
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([wx, wh]).view(1, 2, 1, 1))
        conv.bias.fill_(b)


def test_convgru_single_step_by_hand() -> None:
    gru = ConvGRU(1, 1, kernel_size=1, dropout=0.1).eval()
    _set_conv(gru.update_gate, 0.5, -1.0, 0.1)
    _set_conv(gru.reset_gate, -0.3, 0.8, 0.0)
    _set_conv(gru.candidate, 1.2, 0.7, -0.2)
    x, h = 0.9, -0.4
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    z = sig(0.5 * x - 1.0 * h + 0.1)
    r = sig(-0.3 * x + 0.8 * h)
    cand = math.tanh(1.2 * x + 0.7 * (r * h) - 0.2)
    expected = (1 - z) * h + z * cand
    got = gru.step(torch.full((1, 1, 1, 1), x), torch.full((1, 1, 1, 1), h))
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # zero initial state when none is given: h' = z * cand with h = 0
    z0, cand0 = sig(0.5 * x + 0.1), math.tanh(1.2 * x - 0.2)
    assert gru.step(torch.full((1, 1, 1, 1), x)).item() == pytest.approx(z0 * cand0, abs=1e-6)


def test_convgru_dropout_only_in_train_mode() -> None:
    torch.manual_seed(0)
    gru = ConvGRU(3, 8, dropout=0.5)
    x, h = torch.randn(4, 3, 6, 6), torch.randn(4, 8, 6, 6)
    gru.eval()
    clean = gru.step(x, h)
    assert torch.equal(clean, gru.step(x, h))
    gru.train()
    noisy = gru.step(x, h)
    dropped = noisy == 0
    assert 0.4 < dropped.float().mean() < 0.6
    torch.testing.assert_close(noisy[~dropped], 2 * clean[~dropped])  # kept values scaled by 1/(1-p)


def test_convgru_sequence_matches_steps_and_init() -> None:
    torch.manual_seed(0)
    gru = ConvGRU(4, 4, dropout=0.1).eval()
    w = gru.update_gate.weight.flatten(1)  # (4, 8): rows orthonormal
    torch.testing.assert_close(w @ w.T, torch.eye(4), atol=1e-5, rtol=0)
    assert gru.candidate.bias.abs().sum() == 0
    seq = torch.randn(2, 3, 4, 2, 2)
    outs, last = gru(seq)
    assert outs.shape == (2, 3, 4, 2, 2)
    h = gru.step(seq[:, 0])
    h = gru.step(seq[:, 1], h)
    torch.testing.assert_close(outs[:, 1], h)
    torch.testing.assert_close(last, gru.step(seq[:, 2], h))


def _tiny_model(pred_steps: int = 3, blocks: int = 6, channels: int = 2) -> CPCModel:
    return CPCModel(channels, depth=18, width=TINY, num_blocks=blocks, pred_steps=pred_steps)


def test_cpc_model_shapes_and_unit_norms() -> None:
    torch.manual_seed(0)
    model = _tiny_model()
    out = model(torch.randn(2, 6, 2, 5, 64, 64))
    assert isinstance(out, CPCOutput)
    assert model.out_dim == 16 and (model.num_blocks, model.pred_steps) == (6, 3)
    assert out.pred.shape == out.target.shape == (2, 3, 16, 2, 2)
    assert out.features.shape == (2, 6, 16, 2, 2) and out.context.shape == (2, 16, 2, 2)
    for t in (out.pred, out.target, out.features, out.context):
        torch.testing.assert_close(t.norm(dim=-3), torch.ones_like(t.norm(dim=-3)), atol=1e-4, rtol=0)
    assert torch.equal(out.target, out.features[:, 3:])
    with pytest.raises(ValueError):
        model(torch.randn(2, 6, 3, 5, 64, 64))  # wrong channel count


def test_cpc_model_feeds_predictions_back() -> None:
    torch.manual_seed(0)
    model = _tiny_model(pred_steps=3).eval()
    inputs, outputs = [], []

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor], out: torch.Tensor) -> None:
        inputs.append(args[0])
        out.retain_grad()
        outputs.append(out)

    model.predictor.register_forward_hook(hook)
    out = model(torch.randn(2, 6, 2, 5, 64, 64))
    assert len(inputs) == 3  # phi called once per predicted step
    assert not torch.allclose(inputs[0], inputs[1]) and not torch.allclose(inputs[1], inputs[2])
    torch.testing.assert_close(inputs[0], out.context)
    for k in (1, 2):  # c_{k} = normalise(g-step(z~_k, c_{k-1})), exactly Eq. (4)
        expected = l2_normalise(model.aggregator.step(l2_normalise(outputs[k - 1]), inputs[k - 1]))
        torch.testing.assert_close(inputs[k], expected)
    torch.testing.assert_close(out.pred[:, 0], l2_normalise(outputs[0]))
    out.pred[:, 1].pow(3).sum().backward()  # z~_2 depends on z~_1
    assert outputs[0].grad is not None and outputs[0].grad.abs().sum() > 0
    later = outputs[2].grad  # ... and not on later predictions
    assert later is None or later.abs().sum() == 0


def test_pool_blocks_stacked_max_then_average() -> None:
    cells = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 4, 4).repeat(1, 1, 2, 1, 1)
    cells[:, :, 1] *= -1
    pooled = pool_blocks(cells)
    # 4x4 -> 2x2 max pool: channel 0 {5, 7, 13, 15}, channel 1 {-0, -2, -8, -10}; then mean
    raw = torch.tensor([(5 + 7 + 13 + 15) / 4, -(0 + 2 + 8 + 10) / 4])
    torch.testing.assert_close(pooled[0, 0], raw / (raw.norm() + 1e-5))
    one = torch.randn(2, 3, 8, 1, 1)
    torch.testing.assert_close(pool_blocks(one), l2_normalise(one[..., 0, 0], dim=-1))
    assert pool_blocks(torch.randn(2, 3, 8, 7, 7)).shape == (2, 3, 8)
    assert torch.equal(CPCModel.pool_blocks(cells), pooled)  # the method is the same function


def test_represent_aggregates_all_blocks() -> None:
    torch.manual_seed(0)
    model = _tiny_model().eval()
    x = torch.randn(2, 6, 2, 5, 32, 32)
    rep = model.represent(x)
    assert rep.shape == (2, 16)
    x2 = x.clone()
    x2[:, -1] = torch.randn_like(x2[:, -1])
    assert not torch.allclose(model.represent(x2), rep)  # the last block counts
    x3 = x.clone()
    x3[1] = torch.randn_like(x3[1])
    torch.testing.assert_close(model.represent(x3)[0], rep[0])  # clips are independent (eval)
