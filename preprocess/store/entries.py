"""What a video's entry in a shard holds besides its frames: the attributes every view records, and the
flow target of each stored frame that flow views record beside `frame_indices`."""

from __future__ import annotations

from typing import Any

import numpy as np

from data_specs import VideoRecord

from ..decode import VideoMeta
from ..names import h5_text

FLOW_TARGETS = "flow_target_indices"


def video_attrs(record: VideoRecord, meta: VideoMeta) -> dict[str, Any]:
    """Per-video attributes of every view: the source and what decoding found (gaps, bounds)."""
    return {
        "source_path": h5_text(record.path), "fps": meta.fps, "original_size": np.asarray(meta.original_size),
        "rotation": meta.rotation, "source_frames": meta.decoded_frames, "codec": meta.codec,
        "label": record.label, "expected_frames": meta.expected_frames,
        "missing_end_frames": meta.missing_end_frames, "long_side_capped": meta.long_side_capped,
    }


def flow_target_entry(meta: VideoMeta, targets: list[int]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(datasets, attributes) a flow view adds: the source frame each stored flow goes to, and how many
    stored frames had a repeated successor."""
    return ({FLOW_TARGETS: np.asarray(targets, dtype=np.int64)},
            {"repeated_successors": int(meta.repeated_successors)})


def flow_targets(group: Any) -> np.ndarray | None:
    """The flow target of each stored frame of an entry; None for a store made before they were recorded
    (there the target is always frame_indices + 1)."""
    return group[FLOW_TARGETS][()] if FLOW_TARGETS in group else None
