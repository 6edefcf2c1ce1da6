"""TCLR's per-clip augmentation on the device: one draw per clip, the reference's rates, crops over the whole
frame, geometric only for flow/pose/seg, and a deterministic test transform."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from train.data.augment import IMAGENET_MEAN, IMAGENET_STD
from train.data.clip_augment import LINEAR_EVAL, PRETRAIN, ClipAugment, ClipAugmentSettings


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _constant_clips(n: int, rgb: tuple[int, int, int], t: int = 2, side: int = 8) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.uint8).view(1, 1, 1, 1, 3).expand(n, t, side, side, 3).contiguous()


def test_frames_of_one_clip_share_one_draw() -> None:
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (16, 1, 40, 50, 3), dtype=torch.uint8)
    clips = frame.expand(16, 4, 40, 50, 3).contiguous()  # each clip: one random image four times
    out = ClipAugment("rgb", 24, train=True)(clips, _gen(1))
    assert out.shape == (16, 3, 4, 24, 24)
    for t in range(1, 4):
        torch.testing.assert_close(out[:, :, t], out[:, :, 0], atol=1e-6, rtol=0)
    assert (out[0] - out[1]).abs().max() > 0.05  # but different clips get different draws


def test_two_calls_and_two_copies_differ() -> None:
    torch.manual_seed(1)
    clips = torch.randint(0, 256, (2, 3, 32, 32, 3), dtype=torch.uint8)
    aug, g = ClipAugment("rgb", 16, train=True), _gen(2)
    a, b = aug(clips, g), aug(clips, g)
    assert (a - b).abs().amax(dim=(1, 2, 3, 4)).min() > 0.05
    torch.testing.assert_close(aug(clips, _gen(2)), a)  # the same generator state gives the same clips


def test_crops_reach_the_right_edge_of_the_frame() -> None:
    # 120 x 160 frames, white only in columns 150..159. The reference's crop (x0 <= 160 - 160c, side 120c) ends
    # at column 160 - 40c <= 136 and never sees them; ours must, in a fair share of the draws.
    frames = torch.zeros(400, 1, 120, 160, 1, dtype=torch.uint8)
    frames[..., 150:, :] = 255
    out = ClipAugment("seg", 32, train=True)(frames, _gen(3))
    seen = (out.amax(dim=(1, 2, 3, 4)) > 0.5).float().mean().item()
    # P(right edge > 150) = E[(left + side - 150)+ / (160 - side)] over side ~ U(72, 120): about 0.16
    assert 0.08 < seen < 0.3, seen


def test_rates_of_flip_grey_channel_drop_and_erase_match_the_reference() -> None:
    n = 4000
    clips = _constant_clips(n, (204, 128, 77))
    out = ClipAugment("rgb", 8, train=True)(clips, _gen(4))[:, :, 0]  # (n, 3, 8, 8)
    erased = (out == 0).all(dim=1).flatten(1).any(dim=1)
    grey = ((out[:, 0] - out[:, 1]).abs().amax(dim=(1, 2)) < 1e-6)  # erased pixels are 0 in every channel
    whole_channel_zero = (out == 0).flatten(2).all(dim=2)  # (n, 3)
    dropped = whole_channel_zero.sum(dim=1) == 1
    assert grey.float().mean().item() == pytest.approx(0.175, abs=0.025)
    assert dropped.float().mean().item() == pytest.approx(0.125, abs=0.025)
    assert erased.float().mean().item() == pytest.approx(0.5, abs=0.03)
    # flip: a left-to-right ramp comes out falling in about half of the clips
    ramp = torch.arange(0, 240, 30, dtype=torch.uint8).view(1, 1, 1, 8, 1).expand(n, 1, 8, 8, 1).contiguous()
    flipped = ClipAugment("seg", 8, train=True)(ramp, _gen(5))
    falling = flipped[:, 0, 0, 4, 0] > flipped[:, 0, 0, 4, -1]
    assert falling.float().mean().item() == pytest.approx(0.5, abs=0.03)
    # the linear-evaluation preset: grey p 0.1, no channel drop, erase p 0.25
    lin = ClipAugment("rgb", 8, train=True, settings=LINEAR_EVAL)(clips, _gen(6))[:, :, 0]
    lin_erased = (lin == 0).all(dim=1).flatten(1).any(dim=1)
    lin_grey = ((lin[:, 0] - lin[:, 1]).abs().amax(dim=(1, 2)) < 1e-6)
    assert lin_grey.float().mean().item() == pytest.approx(0.1, abs=0.025)
    assert lin_erased.float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert ((lin == 0).flatten(2).all(dim=2).sum(dim=1) == 1).sum().item() == 0


def test_flow_pose_and_seg_get_the_geometric_part_only() -> None:
    n = 300
    flow = torch.full((n, 2, 16, 16, 2), 200, dtype=torch.uint8)
    flow[..., :8, 0] = 100  # u: 100 on the left half, 200 on the right
    out = ClipAugment("flow", 8, train=True)(flow, _gen(7))
    torch.testing.assert_close(out[:, 1], torch.full_like(out[:, 1], (200 - 127.5) / 127.5), atol=1e-5, rtol=0)
    left, right = out[:, 0, 0, 4, 0], out[:, 0, 0, 4, -1]
    assert bool((left <= right).all())  # never flipped
    pose = torch.zeros(n, 1, 16, 16, 17, dtype=torch.uint8)
    pose[..., 1] = 255  # left eye everywhere, right eye nowhere
    out = ClipAugment("pose", 8, train=True)(pose, _gen(8))
    swapped = out[:, 2, 0].amax(dim=(1, 2)) > 0.99
    assert torch.equal(out[:, 1, 0].amax(dim=(1, 2)) < 0.01, swapped)  # a flip swaps the two channels
    assert swapped.float().mean().item() == pytest.approx(0.5, abs=0.1)
    assert bool(((out - out.round()).abs() < 1e-5).all())  # nothing but crop and flip: still 0 or 1


def test_eval_transform_is_a_centre_crop_in_rgb_order() -> None:
    frames = torch.arange(100, dtype=torch.uint8).view(1, 1, 10, 10, 1).expand(2, 3, 10, 10, 3).contiguous()
    frames[..., 1] = 0
    frames[..., 2] = 255
    aug = ClipAugment("rgb", 8, train=False)
    out = aug(frames)
    # crop side 0.8 x 10 = 8 at (1, 1): with 8 -> 8 the grid samples pixel centres, so values are exact
    torch.testing.assert_close(out[:, 0], frames[..., 0][:, :, 1:9, 1:9].float() / 255)
    assert bool((out[:, 1] == 0).all()) and bool((out[:, 2] == 1).all())
    torch.testing.assert_close(aug(frames), out)
    normed = ClipAugment("rgb", 8, train=False, normalise=True)(frames)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(normed, (out - mean) / std)


def test_bad_settings_and_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(PRETRAIN, scale=(0.0, 1.0))
    with pytest.raises(ValueError):
        dataclasses.replace(PRETRAIN, grey_p=0.9, channel_drop_p=0.2)
    with pytest.raises(ValueError):
        ClipAugmentSettings(erase_sides=(5, 5))
    with pytest.raises(ValueError):
        ClipAugment("rgb", 8, train=True)(torch.zeros(1, 2, 8, 8, 2, dtype=torch.uint8))
    with pytest.raises(ValueError):
        ClipAugment("rgb", 8, train=True)(torch.zeros(2, 8, 8, 3, dtype=torch.uint8))
