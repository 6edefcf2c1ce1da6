"""Optical-flow backends behind one batch interface, one file per implementation, chosen by name.

A backend takes (N, H, W) grey frames t and t+1 and returns (N, H, W, 2) float32 flow. A flow *family*
(tvl1, farneback, dis: the algorithm, whose parameters the CLI's --tvl1/--farneback/--dis set) has one or
more *implementations* (opencv, torch); the registry maps (family, implementation) to the module that
builds it, imported only when chosen, so the next implementation is one file and one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..errors import UserError
from .base import FlowBackend, FlowSettings
from .params import Param, check_bound

# (family, implementation) -> module of this package
IMPLEMENTATIONS: dict[tuple[str, str], str] = {
    ("tvl1", "opencv"): "opencv_tvl1",
    ("tvl1", "torch"): "torch_tvl1",
    ("farneback", "opencv"): "farneback",
    ("dis", "opencv"): "dis",
}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(f for f, _ in IMPLEMENTATIONS))
DEFAULT_IMPLEMENTATION = "opencv"

__all__ = ["FAMILIES", "IMPLEMENTATIONS", "FlowBackend", "FlowSettings", "Param", "check_bound", "family_params",
           "implementations", "make_flow", "describe"]


def _module(family: str, implementation: str) -> ModuleType:
    if family not in FAMILIES:
        raise UserError(f"unknown flow backend {family!r}; choose from {', '.join(FAMILIES)}")
    if (family, implementation) not in IMPLEMENTATIONS:
        raise UserError(f"{family} flow has no {implementation!r} implementation; choose from "
                        f"{', '.join(implementations(family))}")
    return importlib.import_module(f"{__name__}.{IMPLEMENTATIONS[family, implementation]}")


def implementations(family: str) -> list[str]:
    """The implementation names of a flow family, e.g. tvl1 -> ['opencv', 'torch']."""
    return [impl for f, impl in IMPLEMENTATIONS if f == family]


def family_params(family: str) -> tuple[Param, ...]:
    """The declared parameters of a family (every implementation of a family shares them)."""
    return _module(family, DEFAULT_IMPLEMENTATION).PARAMS


def describe(family: str) -> str:
    """One line for --help: the default implementation's description."""
    return _module(family, DEFAULT_IMPLEMENTATION).DESCRIPTION


def make_flow(family: str, params: dict[str, Any] | None = None, implementation: str = DEFAULT_IMPLEMENTATION,
              settings: FlowSettings | None = None) -> FlowBackend:
    """Build a backend by name; every parameter is checked here, before any work (one-line UserError)."""
    return _module(family, implementation).build(dict(params or {}), settings or FlowSettings())
