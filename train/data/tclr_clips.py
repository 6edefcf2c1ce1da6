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

import numpy as np

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
