"""The flow backend interface: a batch of grey frame pairs in, one float32 flow per pair out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np


class FlowBackend(Protocol):
    """A ready flow algorithm. `resolved` holds every parameter value in force (it goes into the store)."""

    resolved: dict[str, Any]

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """(N, H, W) uint8 grey frames t and t+1 -> (N, H, W, 2) float32 flow (u, v) in pixels, t -> t+1."""
        ...


@dataclass(frozen=True)
class FlowSettings:
    """Where and how a backend runs; none of this may change its result beyond float rounding."""

    device: str = "cpu"          # auto | cpu | cuda | cuda:N (backends on the CPU only ignore it)
    batch_size: int = 32         # pairs computed at once, bounding the memory a backend holds


class PairwiseBackend:
    """A backend that computes one pair at a time (OpenCV's algorithms) behind the batch interface."""

    def __init__(self, pair_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], resolved: dict[str, Any]):
        self._pair_fn = pair_fn
        self.resolved = resolved

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pairs(prev, nxt)
        out = np.empty(prev.shape + (2,), np.float32)
        for i in range(len(prev)):
            out[i] = self._pair_fn(prev[i], nxt[i])
        return out


def check_pairs(prev: np.ndarray, nxt: np.ndarray) -> None:
    """Both stacks are (N, H, W) uint8 of one shape."""
    if prev.shape != nxt.shape or prev.ndim != 3 or prev.dtype != np.uint8 or nxt.dtype != np.uint8:
        raise ValueError(f"flow needs two (N, H, W) uint8 stacks of one shape, got {prev.shape} {prev.dtype} "
                         f"and {nxt.shape} {nxt.dtype}")
