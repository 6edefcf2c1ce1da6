"""Where to cut: the stored frames of one clip (time) and the square crop of one view (space).

A clip is N blocks of K consecutive *stored* frames (the store already keeps one source frame in
`stride`, 3 by default), so a clip of 8x5 stored frames spans 120 source frames, as in DPC and CoCon.
"""

from __future__ import annotations

import numpy as np

SHORT_POLICIES = ("spread", "skip")
PLACEMENTS = ("windows", "even")   # test clips: `dense_windows` (evenly chosen), `even_windows`


def window_indices(num_frames: int, num_blocks: int, block_frames: int, rng: np.random.Generator | None,
                   short: str = "spread") -> np.ndarray | None:
    """Stored-frame indices (N·K,) of one clip; random start with `rng`, centred without; None if skipped.

    A video of at least N·K stored frames gives a contiguous run. A shorter one gives, with
    short="spread", indices floor(phase + i·s) with the fractional stride s = num_frames / (N·K) < 1 over
    the whole video, so some frames repeat (CoCon's "dynamic" sampler; the phase is uniform in [0, s)
    with `rng`, s/2 without), and with short="skip" None (DPC drops such videos). An empty video is None.
    """
    if short not in SHORT_POLICIES:
        raise ValueError(f"short must be one of {SHORT_POLICIES}, got {short!r}")
    length = num_blocks * block_frames
    if length < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_blocks} blocks of {block_frames}")
    if num_frames < 1:
        return None
    if num_frames >= length:
        slack = num_frames - length
        start = int(rng.integers(0, slack + 1)) if rng is not None else slack // 2
        return np.arange(start, start + length, dtype=np.int64)
    if short == "skip":
        return None
    step = num_frames / length
    phase = float(rng.uniform(0.0, step)) if rng is not None else step / 2
    idx = np.floor(phase + step * np.arange(length)).astype(np.int64)
    return np.minimum(idx, num_frames - 1)


def dense_windows(num_frames: int, num_blocks: int, block_frames: int, overlap: float = 0.5) -> list[np.ndarray]:
    """Clips covering a whole video for dense evaluation, overlapping by `overlap` (in whole blocks).

    Consecutive windows start round(N·(1 − overlap)) blocks apart (4 blocks for N=8 and 0.5, as DPC on
    UCF101); the last window is aligned to the video's end. A video shorter than one clip gives one
    spread window (see `window_indices`); an empty one gives none.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    length = num_blocks * block_frames
    if num_frames < length:
        one = window_indices(num_frames, num_blocks, block_frames, None, "spread")
        return [] if one is None else [one]
    step = max(1, round(num_blocks * (1.0 - overlap))) * block_frames
    starts = list(range(0, num_frames - length + 1, step))
    if starts[-1] + length < num_frames:
        starts.append(num_frames - length)
    return [np.arange(s, s + length, dtype=np.int64) for s in starts]


def even_windows(num_frames: int, num_blocks: int, block_frames: int, count: int) -> list[np.ndarray]:
    """`count` clips of N·K consecutive stored frames whose starts are int(linspace(0, frames − N·K, count)),
    the first at the video's start and the last ending at its end (TCLR's test clips; repeats kept, so a mean
    over them weighs each clip as TCLR does). A video shorter than one clip gives one spread window (see
    `window_indices`); an empty one gives none."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    length = num_blocks * block_frames
    if num_frames < length:
        one = window_indices(num_frames, num_blocks, block_frames, None, "spread")
        return [] if one is None else [one]
    starts = np.linspace(0, num_frames - length, count).astype(np.int64)
    return [np.arange(s, s + length, dtype=np.int64) for s in starts.tolist()]


def crop_box(height: int, width: int, side: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """(top, left) of a side×side square inside height×width: uniform with `rng`, centred without."""
    if side > min(height, width):
        raise ValueError(f"a {side}x{side} crop does not fit in {height}x{width} frames")
    if rng is None:
        return (height - side) // 2, (width - side) // 2
    return int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))


def crop_side(short_side: int, crop_fraction: float) -> int:
    """The square crop's side: round(crop_fraction · short side), at least 1."""
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    return max(1, int(round(crop_fraction * short_side)))
