"""The views a store can hold, with their defaults: channels, stored size, flow backend, compression.

Compression names refer to preprocess/store/compression.py; the choice per view comes from
`python bench/bench_compression.py` (see README, "Store size and read speed").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewSpec:
    """One view: how many uint8 channels it stores, at which short side, made how, compressed how."""

    name: str
    channels: int
    kind: str                 # "rgb", "flow", "pose" or "seg"
    default_size: int         # short side in pixels
    compression: str
    flow_backend: str = ""
    description: str = ""


VIEWS: dict[str, ViewSpec] = {
    "rgb": ViewSpec("rgb", 3, "rgb", 128, "lz4",  # lz4, not zstd-1: 17% more bytes, ~1.5x faster clip reads
                    description="RGB frames, PyAV decode, area resize"),
    "flow_tvl1": ViewSpec("flow_tvl1", 2, "flow", 128, "zstd-9", "tvl1",
                          description="OpenCV Dual TV-L1 flow (u, v), clipped and quantised to uint8"),
    "flow_farneback": ViewSpec("flow_farneback", 2, "flow", 128, "zstd-9", "farneback",
                               description="OpenCV Farneback flow (u, v), clipped and quantised to uint8"),
    "flow_dis": ViewSpec("flow_dis", 2, "flow", 128, "zstd-9", "dis",
                         description="OpenCV DIS flow (u, v), clipped and quantised to uint8"),
    "pose": ViewSpec("pose", 17, "pose", 64, "zstd-9",
                     description="COCO-17 keypoint heatmaps (Gaussians peaked at the keypoint score), uint8"),
    "seg": ViewSpec("seg", 1, "seg", 64, "zstd-9",
                    description="probability that a pixel shows a person, uint8"),
}

DEFAULT_STRIDE = 3
DEFAULT_SIZE = 128
DEFAULT_FLOW_BOUND = 20.0
DEFAULT_BLOCK_FRAMES = 5
