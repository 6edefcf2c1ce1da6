"""Plain-torch RoIAlign (the mmcv.ops stand-in for two-stage detectors) on maps where bilinear sampling is exact."""

from __future__ import annotations

import torch

from preprocess.roi_align import RoIAlign, roi_align


def _ramps(h: int = 20, w: int = 30) -> torch.Tensor:
    """(2, 2, h, w): channel 0 is x + 10, channel 1 is y + 10, in both images (image 1 shifted by +100)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    one = torch.stack([xs + 10, ys + 10])
    return torch.stack([one, one + 100])


def test_bins_average_to_their_centres_on_linear_maps():
    # aligned: x_start = 4 - 0.5, roi_w = 14 -> bins of 2 (2 samples each); y_start = 5.5, roi_h = 7 -> bins of 1
    out = RoIAlign(7, spatial_scale=1.0, sampling_ratio=0, aligned=True)(_ramps(), torch.tensor([[1, 4, 6, 18, 13.]]))
    assert out.shape == (1, 2, 7, 7)
    expect_x = 3.5 + (torch.arange(7) + 0.5) * 2 + 10 + 100
    expect_y = 5.5 + (torch.arange(7) + 0.5) * 1 + 10 + 100
    torch.testing.assert_close(out[0, 0], expect_x.expand(7, 7))
    torch.testing.assert_close(out[0, 1], expect_y[:, None].expand(7, 7))
    # spatial scale 1/4: the same RoI in image coordinates x4
    scaled = roi_align(_ramps(), torch.tensor([[1, 16, 24, 72, 52.]]), 7, spatial_scale=0.25)
    torch.testing.assert_close(scaled, out)


def test_borders_follow_mmcv():
    f = _ramps()
    # a sample at x = -1 is clamped to 0 (value 10); one below -1 is outside (0)
    assert roi_align(f, torch.tensor([[0, -0.5, 5, 0.5, 6.]]), 1, aligned=True)[0, 0, 0, 0] == 10.0
    assert roi_align(f, torch.tensor([[0, -1.2, 5, -0.2, 6.]]), 1, aligned=True)[0, 0, 0, 0] == 0.0
    # beyond the last column: clamped to it up to one pixel out (x = 29 -> 39), zero further
    assert roi_align(f, torch.tensor([[0, 29.5, 5, 30.5, 6.]]), 1, aligned=True)[0, 0, 0, 0] == 39.0
    assert roi_align(f, torch.tensor([[0, 31, 5, 33, 6.]]), 1, aligned=True)[0, 0, 0, 0] == 0.0
    # legacy (aligned=False): no half-pixel offset, boxes at least one pixel: a point RoI at 5 samples 5.5
    assert roi_align(f, torch.tensor([[0, 5, 5, 5, 5.]]), 1, aligned=False)[0, 0, 0, 0] == 15.5
    assert RoIAlign(7)(f, torch.zeros((0, 5))).shape == (0, 2, 7, 7)
    assert RoIAlign(7).output_size == (7, 7)
