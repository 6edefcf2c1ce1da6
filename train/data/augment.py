"""The arithmetic half of augmentation, batched on the training device: to float, resize, grey and colour
jitter per frame (RGB, training), normalisation per view kind.

Input: the uint8 clips a DataLoader batch holds, (B, T, c, c, C); output: float frames (B, T, C, size, size).
How frames are laid out for an encoder (CoCon's N x K blocks, a plain (B, C, T, H, W) clip) is the encoder's
choice: `train.data.layout.arrange`. Random draws come from a `torch.Generator` that must live on the same device
as the batch: pass `torch.Generator(device=x.device)` (seeded as the caller likes), or None for torch's
default generator of that device.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# RGB -> YIQ (NTSC); hue is a rotation of the (I, Q) plane, luma Y is kept.
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
LUMA = RGB_TO_YIQ[0]
_YIQ = torch.tensor(RGB_TO_YIQ, dtype=torch.float64)
_YIQ_INV = torch.linalg.inv(_YIQ)
FLOW_CENTRE = 127.5


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """n draws from U[low, high) as a float tensor on `like`'s device."""
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return low + (high - low) * u


def luma(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma (F, 1, H, W) of RGB frames (F, 3, H, W)."""
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def random_grey(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Per frame with probability p, replace RGB frames (F, 3, H, W) by one random channel of theirs, x3 (DPC)."""
    n = x.shape[0]
    hit = torch.rand(n, generator=generator, device=x.device) < p
    channel = torch.randint(0, 3, (n,), generator=generator, device=x.device)
    grey = x.gather(1, channel.view(n, 1, 1, 1).expand(n, 1, *x.shape[2:])).expand_as(x)
    return torch.where(hit.view(n, 1, 1, 1), grey, x)


def hue_matrices(angle: torch.Tensor) -> torch.Tensor:
    """RGB->RGB matrices (F, 3, 3) that rotate hue by `angle` radians in YIQ space."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(angle.shape[0], 3, 3, device=angle.device, dtype=angle.dtype)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2] = cos, -sin
    rot[:, 2, 1], rot[:, 2, 2] = sin, cos
    yiq, yiq_inv = (m.to(device=angle.device, dtype=angle.dtype) for m in (_YIQ, _YIQ_INV))
    return yiq_inv @ rot @ yiq


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """RGB frames (F, 3, H, W) in [0, 1] times a per-frame factor (F,), clamped."""
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each frame with its mean luma by a per-frame factor (F,), clamped."""
    mean = luma(x).mean(dim=(1, 2, 3), keepdim=True)
    return (mean + factor.view(-1, 1, 1, 1) * (x - mean)).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each frame with its grey (luma) image by a per-frame factor (F,), clamped."""
    grey = luma(x)
    return (grey + factor.view(-1, 1, 1, 1) * (x - grey)).clamp_(0, 1)


def adjust_hue(x: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """Rotate each frame's hue by a per-frame fraction of a full circle (F,) in YIQ space, clamped."""
    m = hue_matrices(turn * (2 * math.pi))
    return torch.einsum("nij,njhw->nihw", m, x).clamp_(0, 1)


def colour_jitter(x: torch.Tensor, jitter: tuple[float, float, float, float],
                  generator: torch.Generator | None) -> torch.Tensor:
    """Per-frame brightness, contrast, saturation factors in [1−a, 1+a] and a hue turn in [−h, h] of a full
    circle, applied in that fixed order to RGB frames (F, 3, H, W) in [0, 1], clamped after each step."""
    b, c, s, h = jitter
    n = x.shape[0]
    if b > 0:
        x = adjust_brightness(x, _uniform(n, 1 - b, 1 + b, x, generator))
    if c > 0:
        x = adjust_contrast(x, _uniform(n, 1 - c, 1 + c, x, generator))
    if s > 0:
        x = adjust_saturation(x, _uniform(n, 1 - s, 1 + s, x, generator))
    if h > 0:
        x = adjust_hue(x, _uniform(n, -h, h, x, generator))
    return x


def view_kind(store_meta: dict[str, Any]) -> str:
    """A store view's kind (rgb, flow, pose, seg, ...), which decides its augmentation and normalisation."""
    return str(store_meta.get("kind", "rgb"))


class ViewAugment(torch.nn.Module):
    """Turn one view's uint8 clips (B, T, c, c, C) into normalised float frames (B, T, C, size, size).

    All views: to float, bilinear resize c -> size (antialias off). Then rgb: grey per frame with probability
    `grey_p` and colour jitter per frame (only with train=True, fixed at construction: a parent module's
    `.train()` / `.eval()` does not change it, so a validation instance stays deterministic), /255 and ImageNet
    mean/std (normalise=False: /255 only, the [0, 1] inputs TCLR's encoders learnt from); flow: (x − 127.5)/127.5,
    so ±1 is ± the store's flow bound; any other kind (pose, seg, ...): x/255.
    """

    def __init__(self, kind: str, size: int, train: bool, grey_p: float = 0.5,
                 jitter: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.25), normalise: bool = True) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if len(jitter) != 4 or min(jitter) < 0 or max(jitter[:3]) > 1 or jitter[3] > 0.5:
            raise ValueError(f"jitter must be (brightness, contrast, saturation <= 1, hue <= 0.5) >= 0, got {jitter}")
        self.kind, self.size, self.train_mode = kind, int(size), bool(train)
        self.grey_p, self.jitter = float(grey_p), tuple(float(j) for j in jitter)
        self.normalise = bool(normalise)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return (f"kind={self.kind}, size={self.size}, train={self.train_mode}, grey_p={self.grey_p}, "
                f"jitter={self.jitter}, normalise={self.normalise}")

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, T, c, c, C) uint8 -> (B, T, C, size, size) float32, on x's device."""
        if x.dim() != 5:
            raise ValueError(f"expected (B, T, c, c, C), got shape {tuple(x.shape)}")
        bsz, frames, _, _, chans = x.shape
        y = x.reshape(bsz * frames, *x.shape[2:]).permute(0, 3, 1, 2).float()
        if y.shape[-2:] != (self.size, self.size):
            y = F.interpolate(y, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=False)
        y = self._values(y, generator)
        return y.reshape(bsz, frames, chans, self.size, self.size)

    def _values(self, y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Per-kind value mapping of float frames (F, C, H, W) in 0..255."""
        if self.kind == "flow":
            return (y - FLOW_CENTRE) / FLOW_CENTRE
        y = y / 255.0
        if self.kind != "rgb":
            return y
        if y.shape[1] != 3:
            raise ValueError(f"rgb frames need 3 channels, got {y.shape[1]}")
        if self.train_mode:
            if self.grey_p > 0:
                y = random_grey(y, self.grey_p, generator)
            if any(self.jitter):
                y = colour_jitter(y, self.jitter, generator)
        if not self.normalise:
            return y
        return (y - self.mean.to(y.device)) / self.std.to(y.device)
