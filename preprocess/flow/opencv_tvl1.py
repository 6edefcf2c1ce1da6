"""OpenCV contrib's Dual TV-L1 (`cv2.optflow.DualTVL1OpticalFlow`), one pair at a time, on the CPU."""

from __future__ import annotations

from typing import Any

import cv2

from .base import FlowBackend, FlowSettings, PairwiseBackend
from .params import resolve_params
from .tvl1_params import TVL1_PARAMS

FAMILY, IMPLEMENTATION = "tvl1", "opencv"
DESCRIPTION = "Dual TV-L1 with OpenCV's parameter names and defaults (either --flow-impl)"
PARAMS = TVL1_PARAMS

# parameter -> OpenCV's setter/getter suffix
_ACCESSORS = {
    "tau": "Tau", "lambda": "Lambda", "theta": "Theta", "nscales": "ScalesNumber", "warps": "WarpingsNumber",
    "epsilon": "Epsilon", "inner_iterations": "InnerIterations", "outer_iterations": "OuterIterations",
    "scale_step": "ScaleStep", "gamma": "Gamma", "median_filtering": "MedianFiltering",
}


def build(params: dict[str, Any], settings: FlowSettings) -> FlowBackend:
    values = resolve_params(FAMILY, PARAMS, params)
    algo = cv2.optflow.DualTVL1OpticalFlow_create()
    for key, value in values.items():
        getattr(algo, f"set{_ACCESSORS[key]}")(value)
    resolved = {}
    for p in PARAMS:  # read back: the store records what OpenCV actually ran with
        value = getattr(algo, f"get{_ACCESSORS[p.name]}")()
        resolved[p.name] = round(float(value), 6) if p.kind is float else p.kind(value)
    return PairwiseBackend(lambda prev, nxt: algo.calc(prev, nxt, None), resolved)
