"""Dual TV-L1's parameters, shared by its implementations (OpenCV's and ours in PyTorch): the names and
defaults of OpenCV's `cv2.optflow.DualTVL1OpticalFlow`, with the ranges in which it gives a flow."""

from __future__ import annotations

from .params import Param, finite_in, int_at_least, one_of

TVL1_PARAMS: tuple[Param, ...] = (
    Param("tau", float, 0.25, finite_in(0.0, 1e6, low_open=True), "a finite number > 0 (time step)"),
    Param("lambda", float, 0.15, finite_in(0.0, 1e6, low_open=True), "a finite number > 0 (data term weight)"),
    Param("theta", float, 0.3, finite_in(0.0, 1e6, low_open=True), "a finite number > 0 (coupling)"),
    Param("nscales", int, 5, int_at_least(1), "an integer >= 1"),
    Param("warps", int, 5, int_at_least(1), "an integer >= 1"),
    Param("epsilon", float, 0.01, finite_in(0.0, 1e6), "a finite number >= 0 (stopping threshold)"),
    Param("inner_iterations", int, 30, int_at_least(1), "an integer >= 1"),
    Param("outer_iterations", int, 10, int_at_least(1), "an integer >= 1"),
    Param("scale_step", float, 0.8, finite_in(0.0, 1.0, low_open=True), "a number in (0, 1]"),
    Param("gamma", float, 0.0, finite_in(0.0, 1e6), "a finite number >= 0 (0: no illumination term)"),
    Param("median_filtering", int, 5, one_of(0, 1, 3, 5),
          "0 or 1 (off), 3 or 5 (OpenCV's median filter on float flow has no other sizes)"),
)


def rounded(params: dict) -> dict:
    """The parameters as recorded in a store: floats to 6 decimals (as OpenCV's getters read back)."""
    return {k: round(float(v), 6) if isinstance(v, float) else v for k, v in params.items()}
