"""OpenCV's Farneback flow, one pair at a time, on the CPU (OpenCV has no defaults: these are the usual)."""

from __future__ import annotations

from typing import Any

import cv2

from .base import FlowBackend, FlowSettings, PairwiseBackend
from .params import Param, finite_in, int_at_least, one_of, resolve_params

FAMILY, IMPLEMENTATION = "farneback", "opencv"
DESCRIPTION = "OpenCV Farneback (pyr_scale 0.5, levels 3, winsize 15, ...)"
PARAMS: tuple[Param, ...] = (
    Param("pyr_scale", float, 0.5, finite_in(0.0, 1.0, low_open=True, high_open=True), "a number in (0, 1)"),
    Param("levels", int, 3, int_at_least(0), "an integer >= 0"),
    Param("winsize", int, 15, int_at_least(1), "an integer >= 1"),
    Param("iterations", int, 3, int_at_least(1), "an integer >= 1"),
    Param("poly_n", int, 5, int_at_least(1), "an integer >= 1 (typically 5 or 7)"),
    Param("poly_sigma", float, 1.2, finite_in(0.0, 1e6, low_open=True), "a finite number > 0"),
    Param("flags", int, 0, one_of(0, cv2.OPTFLOW_FARNEBACK_GAUSSIAN),
          f"0, or {cv2.OPTFLOW_FARNEBACK_GAUSSIAN} (OPTFLOW_FARNEBACK_GAUSSIAN)"),
)


def build(params: dict[str, Any], settings: FlowSettings) -> FlowBackend:
    resolved = resolve_params(FAMILY, PARAMS, params)
    args = tuple(resolved[p.name] for p in PARAMS)
    return PairwiseBackend(lambda prev, nxt: cv2.calcOpticalFlowFarneback(prev, nxt, None, *args), resolved)
