"""OpenCV's DIS flow, one pair at a time, on the CPU; a preset's values unless a parameter is set."""

from __future__ import annotations

from typing import Any

import cv2

from .base import FlowBackend, FlowSettings, PairwiseBackend
from .params import Param, finite_in, int_at_least, one_of, resolve_params

FAMILY, IMPLEMENTATION = "dis", "opencv"
DESCRIPTION = "OpenCV DIS, preset medium unless set (ultrafast, fast, medium)"
_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
_NONNEG = finite_in(0.0, 1e6)
# a default of None means "the preset's value"; patch_size 1 and finest_scale < 0 crash OpenCV, patch_stride 0
# divides by zero (SIGFPE)
PARAMS: tuple[Param, ...] = (
    Param("preset", str, "medium", one_of(*_PRESETS), f"one of {', '.join(_PRESETS)}"),
    Param("finest_scale", int, None, int_at_least(0), "an integer >= 0"),
    Param("patch_size", int, None, int_at_least(2), "an integer >= 2"),
    Param("patch_stride", int, None, int_at_least(1), "an integer >= 1"),
    Param("gradient_descent_iterations", int, None, int_at_least(0), "an integer >= 0"),
    Param("variational_refinement_iterations", int, None, int_at_least(0), "an integer >= 0"),
    Param("variational_refinement_alpha", float, None, _NONNEG, "a finite number >= 0"),
    Param("variational_refinement_delta", float, None, _NONNEG, "a finite number >= 0"),
    Param("variational_refinement_gamma", float, None, _NONNEG, "a finite number >= 0"),
    Param("use_mean_normalization", bool, None, one_of(True, False), "true or false"),
    Param("use_spatial_propagation", bool, None, one_of(True, False), "true or false"),
)


def _accessor(name: str) -> str:
    return "".join(word.capitalize() for word in name.split("_"))


def build(params: dict[str, Any], settings: FlowSettings) -> FlowBackend:
    given = dict(params)
    if "preset" in given:
        given["preset"] = str(given["preset"]).lower()
    values = resolve_params(FAMILY, PARAMS, given)
    algo = cv2.DISOpticalFlow_create(_PRESETS[values["preset"]])
    for p in PARAMS[1:]:
        if p.name in given:
            getattr(algo, f"set{_accessor(p.name)}")(values[p.name])
    resolved: dict[str, Any] = {"preset": values["preset"]}
    for p in PARAMS[1:]:  # read back: the store records what OpenCV actually ran with
        value = getattr(algo, f"get{_accessor(p.name)}")()
        resolved[p.name] = round(float(value), 6) if p.kind is float else p.kind(value)
    return PairwiseBackend(lambda prev, nxt: algo.calc(prev, nxt, None), resolved)
