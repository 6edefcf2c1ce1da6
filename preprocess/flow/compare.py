"""How close two flows are: endpoint differences and the share of identical stored (uint8) bytes."""

from __future__ import annotations

import numpy as np

from ..quantise import quantise_flow


def flow_agreement(a: np.ndarray, b: np.ndarray, bound: float = 20.0) -> dict[str, float]:
    """Mean and max endpoint difference (px) of two (..., 2) flows, and the fraction of their quantised
    uint8 values (clip to +-bound, as a store holds them) that are identical."""
    epd = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=-1)
    same = quantise_flow(a, bound) == quantise_flow(b, bound)
    return {"mean_epd": float(epd.mean()), "max_epd": float(epd.max()), "identical_bytes": float(same.mean()),
            "share_epd_over_1px": float((epd > 1.0).mean())}


def endpoint_error(flow: np.ndarray, truth: np.ndarray, margin: int) -> float:
    """Mean endpoint error against a true flow, leaving out `margin` pixels at each border."""
    inner = (slice(None),) * (flow.ndim - 3) + (slice(margin, -margin), slice(margin, -margin))
    return float(np.linalg.norm(flow[inner] - truth[margin:-margin, margin:-margin], axis=-1).mean())
