"""Flow quantiser: clip flow to ±bound pixels and map it linearly onto uint8 0..255 (DPC/MemDPC convention)."""

import numpy as np


def quantise_flow(flow: np.ndarray, bound: float) -> np.ndarray:
    """Map float flow in pixels to uint8: -bound -> 0, +bound -> 255, values outside clipped."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantise_flow(q: np.ndarray, bound: float) -> np.ndarray:
    """Inverse of quantise_flow, in float32 pixels (error at most bound/255 inside the bound)."""
    return q.astype(np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound)
