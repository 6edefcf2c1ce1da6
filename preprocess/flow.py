"""Optical-flow backends (OpenCV Dual TV-L1, Farneback, DIS) behind one interface, chosen by name.

Each backend is built from a dict of parameters; every parameter the algorithm has is settable, the
defaults are OpenCV's own (Farneback has none in OpenCV: we use the values everybody uses), and
`resolved_params` reports the values actually in force, read back from OpenCV where it can tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from .errors import UserError

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# name -> (OpenCV setter, OpenCV getter, python type)
_TVL1_PARAMS: dict[str, tuple[str, str, type]] = {
    "tau": ("setTau", "getTau", float),
    "lambda": ("setLambda", "getLambda", float),
    "theta": ("setTheta", "getTheta", float),
    "nscales": ("setScalesNumber", "getScalesNumber", int),
    "warps": ("setWarpingsNumber", "getWarpingsNumber", int),
    "epsilon": ("setEpsilon", "getEpsilon", float),
    "inner_iterations": ("setInnerIterations", "getInnerIterations", int),
    "outer_iterations": ("setOuterIterations", "getOuterIterations", int),
    "scale_step": ("setScaleStep", "getScaleStep", float),
    "gamma": ("setGamma", "getGamma", float),
    "median_filtering": ("setMedianFiltering", "getMedianFiltering", int),
}

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_DIS_PARAMS: dict[str, tuple[str, str, type]] = {
    "finest_scale": ("setFinestScale", "getFinestScale", int),
    "patch_size": ("setPatchSize", "getPatchSize", int),
    "patch_stride": ("setPatchStride", "getPatchStride", int),
    "gradient_descent_iterations": ("setGradientDescentIterations", "getGradientDescentIterations", int),
    "variational_refinement_iterations": (
        "setVariationalRefinementIterations", "getVariationalRefinementIterations", int),
    "variational_refinement_alpha": ("setVariationalRefinementAlpha", "getVariationalRefinementAlpha", float),
    "variational_refinement_delta": ("setVariationalRefinementDelta", "getVariationalRefinementDelta", float),
    "variational_refinement_gamma": ("setVariationalRefinementGamma", "getVariationalRefinementGamma", float),
    "use_mean_normalization": ("setUseMeanNormalization", "getUseMeanNormalization", bool),
    "use_spatial_propagation": ("setUseSpatialPropagation", "getUseSpatialPropagation", bool),
}

FARNEBACK_DEFAULTS: dict[str, Any] = {
    "pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0,
}
_FARNEBACK_TYPES = {"pyr_scale": float, "levels": int, "winsize": int, "iterations": int,
                    "poly_n": int, "poly_sigma": float, "flags": int}


@dataclass(frozen=True)
class FlowBackend:
    """A named flow algorithm: `build(params)` gives a function (grey t, grey t+1) -> float32 (H, W, 2)."""

    name: str
    description: str
    param_names: tuple[str, ...]
    build: Callable[[dict[str, Any]], tuple[FlowFn, dict[str, Any]]]


def _coerce(backend: str, key: str, value: Any, kind: type) -> Any:
    """Convert one user-given parameter to its type, or explain in one line why it cannot be."""
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("0", "1", "true", "false"):
                raise ValueError(value)
            return value.lower() in ("1", "true")
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{backend} parameter {key}={value!r} is not a valid {kind.__name__}") from None


def _check_keys(backend: str, params: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UserError(f"unknown {backend} parameter(s) {', '.join(unknown)}; known: {', '.join(allowed)}")


def _apply_setters(backend: str, obj: Any, params: dict[str, Any],
                   table: dict[str, tuple[str, str, type]]) -> dict[str, Any]:
    """Set each given parameter on an OpenCV algorithm object and read every parameter back."""
    _check_keys(backend, params, tuple(table) + (("preset",) if backend == "dis" else ()))
    for key, value in params.items():
        if key == "preset":
            continue
        setter, _, kind = table[key]
        getattr(obj, setter)(_coerce(backend, key, value, kind))
    resolved = {}
    for key, (_, getter, kind) in table.items():
        value = getattr(obj, getter)()
        resolved[key] = round(float(value), 6) if kind is float else kind(value)
    return resolved


def _build_tvl1(params: dict[str, Any]) -> tuple[FlowFn, dict[str, Any]]:
    algo = cv2.optflow.DualTVL1OpticalFlow_create()
    resolved = _apply_setters("tvl1", algo, params, _TVL1_PARAMS)

    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return algo.calc(prev, nxt, None)

    return flow, resolved


def _build_farneback(params: dict[str, Any]) -> tuple[FlowFn, dict[str, Any]]:
    _check_keys("farneback", params, tuple(FARNEBACK_DEFAULTS))
    resolved = dict(FARNEBACK_DEFAULTS)
    for key, value in params.items():
        resolved[key] = _coerce("farneback", key, value, _FARNEBACK_TYPES[key])
    args = tuple(resolved[k] for k in FARNEBACK_DEFAULTS)

    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, *args)

    return flow, resolved


def _build_dis(params: dict[str, Any]) -> tuple[FlowFn, dict[str, Any]]:
    preset = str(params.get("preset", "medium")).lower()
    if preset not in _DIS_PRESETS:
        raise UserError(f"dis parameter preset={preset!r} is not one of {', '.join(_DIS_PRESETS)}")
    algo = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    resolved = {"preset": preset, **_apply_setters("dis", algo, params, _DIS_PARAMS)}

    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return algo.calc(prev, nxt, None)

    return flow, resolved


FLOW_BACKENDS: dict[str, FlowBackend] = {
    "tvl1": FlowBackend("tvl1", "OpenCV contrib Dual TV-L1 (cv2.optflow), OpenCV's defaults",
                        tuple(_TVL1_PARAMS), _build_tvl1),
    "farneback": FlowBackend("farneback", "OpenCV Farneback (pyr_scale 0.5, levels 3, winsize 15, ...)",
                             tuple(FARNEBACK_DEFAULTS), _build_farneback),
    "dis": FlowBackend("dis", "OpenCV DIS, preset medium unless set (ultrafast, fast, medium)",
                       ("preset",) + tuple(_DIS_PARAMS), _build_dis),
}


def make_flow(backend: str, params: dict[str, Any] | None = None) -> tuple[FlowFn, dict[str, Any]]:
    """Build a flow function for a backend name and return it with the parameters in force."""
    if backend not in FLOW_BACKENDS:
        raise UserError(f"unknown flow backend {backend!r}; choose from {', '.join(FLOW_BACKENDS)}")
    return FLOW_BACKENDS[backend].build(dict(params or {}))
