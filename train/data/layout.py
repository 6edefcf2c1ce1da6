"""How an encoder wants a clip's frames laid out. `ViewAugment` yields frames (B, T, C, H, W); an encoder
names its layout (`input_layout`) and `arrange` turns the frames into it:

- "blocks": (B, N, C, K, H, W), N blocks of K consecutive frames (CoCon, DPC: T = N·K);
- "clip":   (B, C, T, H, W), one 3D clip (an R3D encoder, TCLR).
"""

from __future__ import annotations

import torch

LAYOUTS = ("blocks", "clip")


def as_blocks(frames: torch.Tensor, num_blocks: int) -> torch.Tensor:
    """(B, N·K, C, H, W) -> (B, N, C, K, H, W), contiguous."""
    bsz, t = frames.shape[:2]
    if t % num_blocks:
        raise ValueError(f"{t} frames do not split into {num_blocks} blocks")
    k = t // num_blocks
    return frames.reshape(bsz, num_blocks, k, *frames.shape[2:]).permute(0, 1, 3, 2, 4, 5).contiguous()


def as_clip(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, C, T, H, W), contiguous."""
    return frames.permute(0, 2, 1, 3, 4).contiguous()


def arrange(frames: torch.Tensor, layout: str, num_blocks: int) -> torch.Tensor:
    """Frames (B, T, C, H, W) in `layout` (`num_blocks` is used by "blocks" only)."""
    if layout == "blocks":
        return as_blocks(frames, num_blocks)
    if layout == "clip":
        return as_clip(frames)
    raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
