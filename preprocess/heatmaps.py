"""Keypoint heatmaps: render detected keypoints as Gaussians, one channel per COCO-17 keypoint.

Shared by every pose backend. Several people in a frame are combined per keypoint, by the per-pixel
maximum (default: a peak stays a peak) or by a score-weighted sum clipped to 1 (the original CoCon's rule).
"""

from __future__ import annotations

import numpy as np

COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle")
COMBINE = ("max", "sum")


def render_heatmaps(keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int], sigma: float,
                    combine: str = "max", person_scores: np.ndarray | None = None) -> np.ndarray:
    """(P, 17, 2) keypoints in output pixels (x, y) and (P, 17) scores -> (H, W, 17) float32 in [0, 1].

    Each keypoint is a Gaussian of std `sigma` pixels whose peak is its score; `person_scores` (P,)
    weight people in the "sum" combination.
    """
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
    h, w = size
    out = np.zeros((h, w, len(COCO17)), np.float32)
    if len(keypoints) == 0:
        return out
    ys = np.arange(h, dtype=np.float32)[None, :, None]
    xs = np.arange(w, dtype=np.float32)[None, None, :]
    weights = np.ones(len(keypoints), np.float32) if person_scores is None else np.asarray(person_scores, np.float32)
    for person, (kps, sc) in enumerate(zip(np.asarray(keypoints, np.float32), np.asarray(scores, np.float32))):
        gy = np.exp(-0.5 * ((ys - kps[:, 1, None, None]) / sigma) ** 2)      # (17, H, 1)
        gx = np.exp(-0.5 * ((xs - kps[:, 0, None, None]) / sigma) ** 2)      # (17, 1, W)
        maps = (gy * gx * sc[:, None, None]).transpose(1, 2, 0)             # (H, W, 17)
        if combine == "max":
            np.maximum(out, maps, out=out)
        else:
            out += weights[person] * maps
    return np.clip(out, 0.0, 1.0)


def to_uint8(maps: np.ndarray) -> np.ndarray:
    """[0, 1] float maps -> uint8 0..255 (rounded)."""
    return np.rint(np.clip(maps, 0.0, 1.0) * 255.0).astype(np.uint8)
