"""TCLR's augmentation (research/tclr_reference.md §3, §7), batched on the training device, one random draw
per CLIP shared by all its frames.

uint8 clips as the store gives them (B, T, H, W, C) -> float (B, C, T, size, size). Geometric part, every
view kind: a square crop of side U(scale) x the short side anywhere in the frame (the reference's x0 never
lets a crop reach the right quarter: bug 4), resized bilinearly, and a horizontal flip (pose: left/right
keypoint channels swapped; flow: never flipped, as in CoCon's data path, since a flip would need u -> -u).
RGB only, in the reference's order: contrast, hue, saturation, brightness, contrast again (the same factor),
then grey + gamma or one channel dropped, then a random erase. Frames are RGB (the reference feeds OpenCV's
BGR as RGB: bug 5). Values: RGB, pose, seg /255 (TCLR has no mean/std; `normalise=True` adds ImageNet's),
flow (x - 127.5)/127.5 as CoCon's. Draws come from a `torch.Generator` on the batch's device (None: torch's
default one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .augment import (FLOW_CENTRE, IMAGENET_MEAN, IMAGENET_STD, adjust_brightness, adjust_contrast, adjust_hue,
                      adjust_saturation, luma)
from .dataset import FLIP_PAIRS_BY_KIND, NO_FLIP_KINDS, flip_permutation

ERASE_REFERENCE_SIZE = 112  # the reference's erase sides (9..18 px) are for 112 px outputs


@dataclass(frozen=True)
class ClipAugmentSettings:
    """Probabilities and ranges, per clip. A factor range a means U(1 - a, 1 + a); hue is a fraction of a
    full turn. Contrast is applied before the other colour changes with p `contrast_p_before`, after them with
    p `contrast_p_after` (never both); grey (then gamma with p `gamma_p`) and channel drop exclude each other."""

    scale: tuple[float, float] = (0.6, 1.0)
    contrast: float = 0.25
    contrast_p_before: float = 0.125
    contrast_p_after: float = 0.125
    hue: float = 0.1
    hue_p: float = 0.3
    saturation: float = 0.25
    saturation_p: float = 0.3
    brightness: float = 0.25
    brightness_p: float = 0.3
    grey_p: float = 0.175
    gamma: float = 0.25
    gamma_p: float = 0.75
    channel_drop_p: float = 0.125
    flip_p: float = 0.5
    erase_p: float = 0.5
    erase_sides: tuple[int, int] = (9, 19)  # [low, high) px at 112 px output, scaled with the output size
    eval_crop: float = 0.8

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        probs = {k: getattr(self, k) for k in ("contrast_p_before", "contrast_p_after", "hue_p", "saturation_p",
                                               "brightness_p", "grey_p", "gamma_p", "channel_drop_p", "flip_p",
                                               "erase_p")}
        bad = [k for k, p in probs.items() if not 0 <= p <= 1]
        if bad or self.contrast_p_before + self.contrast_p_after > 1 or self.grey_p + self.channel_drop_p > 1:
            raise ValueError(f"probabilities must lie in [0, 1] (contrast before + after and grey + channel drop "
                             f"too), got {probs}")
        if not (0 <= self.contrast <= 1 and 0 <= self.saturation <= 1 and 0 <= self.brightness <= 1
                and 0 <= self.gamma < 1 and 0 <= self.hue <= 0.5):
            raise ValueError("factor ranges must lie in [0, 1] (gamma < 1), hue in [0, 0.5]")
        if not 1 <= self.erase_sides[0] < self.erase_sides[1]:
            raise ValueError(f"erase_sides must be 1 <= low < high, got {self.erase_sides}")
        if not 0 < self.eval_crop <= 1:
            raise ValueError(f"eval_crop must be in (0, 1], got {self.eval_crop}")


PRETRAIN = ClipAugmentSettings()
# §7: the linear-evaluation training clips, weaker colour changes, no channel drop, erase p 0.25.
LINEAR_EVAL = ClipAugmentSettings(contrast=0.1, contrast_p_before=0.0625, contrast_p_after=0.0625, hue=0.05,
                                  hue_p=0.15, saturation=0.1, saturation_p=0.15, brightness=0.1, brightness_p=0.15,
                                  grey_p=0.1, gamma=0.15, channel_drop_p=0.0, erase_p=0.25)


def _rand(n: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """n uniforms in [0, 1) on `like`'s device."""
    return torch.rand(n, generator=generator, device=like.device)


def crop_grids(height: int, width: int, size: int, side: Tensor, top: Tensor, left: Tensor, flip: Tensor) -> Tensor:
    """Sampling grids (B, size, size, 2) for `grid_sample` (align_corners=False) that take the side x side square
    at (top, left) in pixels of an H x W frame to size x size, mirrored where `flip`."""
    b = side.shape[0]
    theta = torch.zeros(b, 2, 3, device=side.device)
    theta[:, 0, 0] = torch.where(flip, -1.0, 1.0) * side / width
    theta[:, 0, 2] = (2 * left + side) / width - 1
    theta[:, 1, 1] = side / height
    theta[:, 1, 2] = (2 * top + side) / height - 1
    return F.affine_grid(theta, [b, 1, size, size], align_corners=False)


def _where(hit: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per frame (F,), `new` where hit else `old`."""
    return torch.where(hit.view(-1, 1, 1, 1), new, old)


class ClipAugment(torch.nn.Module):
    """One view's clips (B, T, H, W, C) uint8 -> (B, C, T, size, size) float, one draw per clip.

    kind: "rgb", "flow", "pose", "seg" (any other: geometric only, /255). train=False is the deterministic test
    transform: centre square crop of `eval_crop` x the short side, resized, nothing else."""

    def __init__(self, kind: str, size: int, train: bool, settings: ClipAugmentSettings = PRETRAIN,
                 normalise: bool = False) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.kind, self.size, self.train_mode, self.settings = kind, int(size), bool(train), settings
        self.normalise = bool(normalise)
        self.flip_pairs = FLIP_PAIRS_BY_KIND.get(kind)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, size={self.size}, train={self.train_mode}, normalise={self.normalise}"

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, T, H, W, C) uint8 -> (B, C, T, size, size) float32 on x's device."""
        if x.dim() != 5:
            raise ValueError(f"expected clips (B, T, H, W, C), got shape {tuple(x.shape)}")
        if self.kind == "rgb" and x.shape[-1] != 3:
            raise ValueError(f"rgb clips need 3 channels, got {x.shape[-1]}")
        y = self._geometry(x, generator)  # (B, C, T, s, s) in 0..255
        if self.kind == "flow":
            return (y - FLOW_CENTRE) / FLOW_CENTRE
        y = y / 255.0
        if self.kind != "rgb":
            return y
        if self.train_mode:
            y = self._colour(y, generator)
            y = self._erase(y, generator)
        return (y - self.mean.to(y.device)) / self.std.to(y.device) if self.normalise else y

    def _geometry(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Crop, resize and flip per clip: (B, T, H, W, C) -> float (B, C, T, s, s)."""
        b, t, h, w, c = x.shape
        short = float(min(h, w))
        frames = x.permute(0, 4, 1, 2, 3).reshape(b, c * t, h, w).float()
        if self.train_mode:
            lo, hi = self.settings.scale
            side = short * (lo + (hi - lo) * _rand(b, x, generator))
            top = (h - side) * _rand(b, x, generator)
            left = (w - side) * _rand(b, x, generator)  # the whole width, unlike the reference
            flip = _rand(b, x, generator) < self.settings.flip_p
            if self.kind in NO_FLIP_KINDS:
                flip = torch.zeros_like(flip)
        else:
            side = torch.full((b,), short * self.settings.eval_crop, device=x.device)
            top, left = (h - side) / 2, (w - side) / 2
            flip = torch.zeros(b, dtype=torch.bool, device=x.device)
        grid = crop_grids(h, w, self.size, side, top, left, flip)
        y = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
        y = y.view(b, c, t, self.size, self.size)
        if self.flip_pairs and self.train_mode:
            perm = torch.from_numpy(flip_permutation(c, self.flip_pairs)).to(y.device)
            y = torch.where(flip.view(b, 1, 1, 1, 1), y[:, perm], y)
        return y

    def _colour(self, y: Tensor, generator: torch.Generator | None) -> Tensor:
        """The reference's colour chain with one draw per clip, on (B, 3, T, s, s) in [0, 1]."""
        st = self.settings
        b, c, t = y.shape[:3]
        r = torch.rand(b, 8, generator=generator, device=y.device)  # which operations apply, as the reference's r

        def per_frame(v: Tensor) -> Tensor:  # a per-clip value (B,) repeated over the clip's frames
            return v.repeat_interleave(t)

        def factor(a: float) -> Tensor:
            return per_frame(1 - a + 2 * a * _rand(b, y, generator))

        frames = y.transpose(1, 2).reshape(b * t, c, *y.shape[-2:])
        contrast = factor(st.contrast)
        before = per_frame(r[:, 0] < st.contrast_p_before)
        after = per_frame((r[:, 0] >= st.contrast_p_before) & (r[:, 0] < st.contrast_p_before + st.contrast_p_after))
        frames = _where(before, adjust_contrast(frames, contrast), frames)
        frames = _where(per_frame(r[:, 1] < st.hue_p),
                        adjust_hue(frames, per_frame(st.hue * (2 * _rand(b, y, generator) - 1))), frames)
        frames = _where(per_frame(r[:, 2] < st.saturation_p), adjust_saturation(frames, factor(st.saturation)), frames)
        frames = _where(per_frame(r[:, 3] < st.brightness_p), adjust_brightness(frames, factor(st.brightness)), frames)
        frames = _where(after, adjust_contrast(frames, contrast), frames)
        grey = per_frame(r[:, 4] < st.grey_p)
        gamma = factor(st.gamma).view(-1, 1, 1, 1)
        grey_frames = luma(frames).expand_as(frames)
        grey_frames = _where(per_frame(r[:, 5] < st.gamma_p), grey_frames.clamp(min=0) ** gamma, grey_frames)
        frames = _where(grey, grey_frames, frames)
        drop = per_frame((r[:, 4] >= st.grey_p) & (r[:, 4] < st.grey_p + st.channel_drop_p))
        keep = torch.ones(b, c, device=y.device).scatter_(1, torch.randint(0, c, (b, 1), generator=generator,
                                                                             device=y.device), 0.0)
        frames = _where(drop, frames * keep.repeat_interleave(t, dim=0).view(b * t, c, 1, 1), frames)
        return frames.view(b, t, c, *y.shape[-2:]).transpose(1, 2)

    def _erase(self, y: Tensor, generator: torch.Generator | None) -> Tensor:
        """With p `erase_p` per clip, zero one rectangle (the same in every frame and channel); its corner is
        anywhere in the frame and it is cut at the border, as torchvision's erase."""
        st = self.settings
        b, s = y.shape[0], self.size
        lo = max(1, round(st.erase_sides[0] * s / ERASE_REFERENCE_SIZE))
        hi = max(lo + 1, round(st.erase_sides[1] * s / ERASE_REFERENCE_SIZE))
        hit = _rand(b, y, generator) < st.erase_p
        corner = torch.randint(0, s, (b, 2), generator=generator, device=y.device)
        sides = torch.randint(lo, hi, (b, 2), generator=generator, device=y.device)
        pos = torch.arange(s, device=y.device)
        rows = (pos >= corner[:, :1]) & (pos < corner[:, :1] + sides[:, :1])  # (B, s)
        cols = (pos >= corner[:, 1:]) & (pos < corner[:, 1:] + sides[:, 1:])
        box = (rows[:, :, None] & cols[:, None, :]) & hit.view(b, 1, 1)
        return y.masked_fill(box.view(b, 1, 1, s, s), 0.0)
