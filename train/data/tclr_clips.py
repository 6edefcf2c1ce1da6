"""Where TCLR cuts one video (research/tclr_reference.md §2), in STORED frames: one window of
clip_frames x sparse_step frames; the sparse (global) clip takes every sparse_step-th frame of it; the
local_clips dense (local) clips of clip_frames frames tile it, dense clip j holding exactly the frames of the
sparse clip's time cell j (its frames j*F/L .. (j+1)*F/L - 1, F = clip_frames, L = local_clips).

The paper's values (16 frames, step 4, 4 clips; 64 frames, dense step 1) are TCLR's at the source frame
rate, so a store written with `--stride 1` reproduces them; on a stride-s store every span is s times longer
in time. A video shorter than the window follows CoCon's policy (`sampling.window_indices`): "spread" stretches
the window over the whole video (some frames repeat), "skip" drops it; no video is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dataset import MultiViewClips
from .sampling import window_indices


@dataclass(frozen=True)
class TCLRClipSpec:
    """The shape of TCLR's clips: `clip_frames` per clip, the sparse clip every `sparse_step` frames, and
    `local_clips` dense clips, one per time cell of the sparse clip's feature map."""

    clip_frames: int = 16
    sparse_step: int = 4
    local_clips: int = 4

    def __post_init__(self) -> None:
        if min(self.clip_frames, self.sparse_step, self.local_clips) < 1:
            raise ValueError(f"clip_frames, sparse_step and local_clips must be >= 1, got {self}")
        if self.clip_frames % self.local_clips or self.sparse_step % self.local_clips:
            raise ValueError(f"local_clips ({self.local_clips}) must divide clip_frames ({self.clip_frames}) and "
                             f"sparse_step ({self.sparse_step}) so that the dense clips tile the sparse span")

    @property
    def span(self) -> int:
        """Stored frames the window covers: clip_frames x sparse_step."""
        return self.clip_frames * self.sparse_step

    @property
    def dense_step(self) -> int:
        """Frame step inside a dense clip: span / (local_clips x clip_frames) (1 for the paper's values)."""
        return self.sparse_step // self.local_clips


@dataclass(frozen=True)
class TCLRClipIndices:
    """Stored-frame indices of one video's TCLR sample: the window (span,), the sparse clip (clip_frames,)
    and the dense clips (local_clips, clip_frames)."""

    window: np.ndarray
    sparse: np.ndarray
    dense: np.ndarray


def tclr_clip_indices(num_frames: int, spec: TCLRClipSpec, rng: np.random.Generator | None,
                      short: str = "spread") -> TCLRClipIndices | None:
    """TCLR's clips of a video of `num_frames` stored frames: a random window with `rng`, the centred one
    without (evaluation); None when `short="skip"` and the video is shorter than the window (or it is empty)."""
    window = window_indices(num_frames, spec.local_clips, spec.span // spec.local_clips, rng, short)
    if window is None:
        return None
    sparse = window[::spec.sparse_step]
    dense = window.reshape(spec.local_clips, -1)[:, ::spec.dense_step]
    return TCLRClipIndices(window, sparse, dense)


class TCLRClips(MultiViewClips):
    """TCLR's samples from a store: item i is {"index", "label", <view>: uint8 (clip_frames·(1 + local_clips),
    c, c, C)}, the sparse clip's frames first, then the dense clips' one after another (`split_sparse_dense`
    cuts them apart). Every view holds the same stored frames and one worker crop/flip per view (crop_fraction
    1: the whole short side); each clip's own crop, flip and colour are drawn later, on the device."""

    def __init__(self, root: str | Path, views: list[str], spec: TCLRClipSpec, split: str | None = None,
                 subset: str | None = None, short: str = "spread", train: bool = True, crop_fraction: float = 1.0,
                 seed: int = 0, skip_failed: bool = False, video_ids: list[str] | None = None) -> None:
        super().__init__(root, views, split, subset, num_blocks=spec.local_clips,
                         block_frames=spec.span // spec.local_clips, short=short, train=train,
                         crop_fraction=crop_fraction, seed=seed, skip_failed=skip_failed, video_ids=video_ids)
        self.spec = spec

    @property
    def frames_per_item(self) -> int:
        return self.spec.clip_frames * (1 + self.spec.local_clips)

    def item_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        spec = super().item_spec()
        return {k: ((self.frames_per_item, *shape[1:]), dtype) if k in self.views else (shape, dtype)
                for k, (shape, dtype) in spec.items()}

    def indices(self, index: int, rng: np.random.Generator | None) -> TCLRClipIndices:
        """The stored-frame indices of sample `index` (the same for every view)."""
        idx = tclr_clip_indices(self.num_frames[index], self.spec, rng, self.short)
        assert idx is not None  # videos without a window were dropped at build time
        return idx

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        index %= len(self)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        idx = self.indices(index, rng)
        return {"index": index, **self.clip(index, np.concatenate([idx.sparse, idx.dense.ravel()]), rng)}


def split_sparse_dense(frames: torch.Tensor, spec: TCLRClipSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of TCLRClips items (B, F·(1 + L), ...) -> the sparse clips (B, F, ...) and the dense clips
    (B·L, F, ...), video-major."""
    f = spec.clip_frames
    return frames[:, :f], frames[:, f:].reshape(frames.shape[0] * spec.local_clips, f, *frames.shape[2:])
