"""TCLR's R3D-18 and projection head against the reference's measured facts (tclr_reference.md §4)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from train.models.r3d import ProjectionHead, TCLRModel, r3d18


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_reference() -> None:
    model = TCLRModel(in_channels=3, width=1.0)
    assert _count(model.backbone) == 33_166_272
    assert _count(model.head) == 329_472
    assert model.out_dim == 512


def test_shapes_of_the_reference_at_width_one() -> None:
    torch.manual_seed(0)
    backbone = r3d18(3, 1.0).eval()
    x = torch.randn(2, 3, 16, 112, 112)
    shapes = []
    with torch.no_grad():
        y = backbone.stem(x)
        shapes.append(tuple(y.shape))
        for stage in backbone.stages:
            y = stage(y)
            shapes.append(tuple(y.shape))
        pooled = backbone(x)
    assert shapes == [(2, 64, 16, 56, 56), (2, 64, 16, 56, 56), (2, 128, 8, 28, 28), (2, 256, 4, 14, 14),
                      (2, 512, 4, 7, 7)]
    assert pooled.shape == (2, 512, 4)
    torch.testing.assert_close(pooled, y.mean(dim=(-2, -1)))


def test_layer4_keeps_time_with_dilation_two() -> None:
    first = r3d18(3, 0.125).stages[3][0]
    assert first.conv1.stride == (1, 2, 2) and first.conv1.dilation == (2, 1, 1) and first.conv1.padding == (2, 1, 1)
    assert first.shortcut[0].stride == (1, 2, 2)
    assert r3d18(3, 0.125).stages[2][0].conv1.stride == (2, 2, 2)


def test_embeddings_are_unit_and_sparse_clip_gives_one_per_step() -> None:
    torch.manual_seed(1)
    model = TCLRModel(in_channels=3, width=0.125)
    dense = model(torch.randn(3, 3, 16, 32, 32))
    assert dense.clip.shape == (3, 128) and dense.steps is None
    sparse = model(torch.randn(3, 3, 16, 32, 32), steps=True)
    assert sparse.clip.shape == (3, 128) and sparse.steps is not None and sparse.steps.shape == (3, 4, 128)
    for e in (dense.clip, sparse.clip, sparse.steps):
        torch.testing.assert_close(e.norm(dim=-1), torch.ones(e.shape[:-1]), atol=1e-5, rtol=0)


def test_each_time_step_is_its_own_batchnorm_batch() -> None:
    torch.manual_seed(2)
    model = TCLRModel(in_channels=3, width=0.125)
    x = torch.randn(4, 3, 16, 32, 32)
    steps = model(x, steps=True).steps
    fmap = model.backbone(x)
    assert steps is not None
    for t in range(4):  # a separate head call per step gives the same vectors (train-mode BN)
        torch.testing.assert_close(steps[:, t], model.head(fmap[..., t]), atol=1e-5, rtol=0)
    stacked = model.head(fmap.permute(2, 0, 1).reshape(16, -1)).view(4, 4, -1).transpose(0, 1)
    assert (stacked - steps).abs().max() > 1e-3  # one call over all steps normalises differently


@pytest.mark.parametrize("channels", [1, 2, 17])
def test_other_input_channel_counts(channels: int) -> None:
    torch.manual_seed(3)
    model = TCLRModel(in_channels=channels, width=0.125, proj_dim=32)
    assert model.in_channels == channels
    out = model(torch.randn(2, channels, 8, 32, 32), steps=True)
    assert out.clip.shape == (2, 32) and out.steps is not None and out.steps.shape == (2, 2, 32)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, channels + 1, 8, 32, 32))


def test_width_scales_every_stage_and_bad_settings_are_refused() -> None:
    assert r3d18(3, 0.25).out_dim == 128
    assert ProjectionHead(128, 128, 64)(torch.randn(4, 128)).shape == (4, 64)
    with pytest.raises(ValueError):
        r3d18(3, 0.0)
    with pytest.raises(ValueError):
        r3d18(0, 1.0)
