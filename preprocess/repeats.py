"""Repeated source frames: a frame equal (or all but equal) to its predecessor has no motion to give.

Videos repeat frames (60 fps files of 30 fps content, pull-down, padding of dropped frames); flow from
such a frame to its repeat is zero. The flow target of a stored frame is therefore the next source frame
that differs from it, at most MAX_SKIP frames ahead (else t+1: the scene is still).
"""

from __future__ import annotations

import cv2
import numpy as np

from .frame_policy import CHANGE_LEVEL


def grey(rgb: np.ndarray) -> np.ndarray:
    """Grey levels of an RGB frame (the same conversion the flow views use)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def is_repeat(grey_a: np.ndarray, grey_b: np.ndarray, max_changed: float) -> bool:
    """Whether frame b repeats frame a: at most `max_changed` of pixels differ by more than CHANGE_LEVEL."""
    changed = cv2.absdiff(grey_a, grey_b) > CHANGE_LEVEL
    return int(np.count_nonzero(changed)) <= max_changed * changed.size
