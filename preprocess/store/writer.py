"""The shard writer: one process writes one shard of one view into a private partial file, which is
renamed to its final name only when every video of the shard is written (or recorded as failed).

A kill at any moment leaves at most a partial file, which readers never look at and a re-run redoes.
Frames are written in whole blocks of `block_frames`, so each compressed chunk is written once, with
HDF5's Fletcher-32 checksum of the compressed bytes, so that any read of a damaged chunk fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..names import h5_text
from .compression import compression_kwargs
from .layout import FORMAT, fsync_dir, partial_path, shard_path, video_key

FLUSH_BLOCKS = 16


class ShardWriter:
    """Writes the videos of one shard of one view; `commit()` publishes it, `discard()` drops it."""

    def __init__(self, root: Path, view: str, shard: int, view_attrs: dict[str, Any],
                 compression: str, block_frames: int) -> None:
        self.final = shard_path(root, view, shard)
        self.partial = partial_path(root, view, shard)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self.block = block_frames
        self.compression = compression_kwargs(compression)
        self.failures: list[dict[str, str]] = []
        self.videos: list[str] = []
        self._file = h5py.File(self.partial, "w", libver=("earliest", "v110"), track_order=True)
        self._file.attrs["format"] = FORMAT
        self._file.attrs["view"] = view
        self._file.attrs["shard"] = shard
        self._file.attrs["view_params"] = json.dumps(view_attrs, sort_keys=True)
        self._videos = self._file.create_group("videos", track_order=True)
        self._group: h5py.Group | None = None
        self._frames: h5py.Dataset | None = None
        self._buffer: list[np.ndarray] = []
        self._buffered = 0

    def begin_video(self, video_id: str) -> None:
        """Start a video's entry; frames follow with `append`."""
        self._group = self._videos.create_group(video_key(video_id))
        self._group.attrs["id"] = h5_text(video_id)
        self._video_id = video_id
        self._frames, self._buffer, self._buffered = None, [], 0

    def append(self, frames: np.ndarray) -> None:
        """Add frames (N, H, W, C) uint8 of the current video."""
        if frames.ndim != 4 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (N, H, W, C) uint8, got {frames.shape} {frames.dtype}")
        self._buffer.append(frames)
        self._buffered += len(frames)
        if self._buffered >= FLUSH_BLOCKS * self.block:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._buffer:
            return
        data = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        n = len(data) if final else (len(data) // self.block) * self.block
        if self._frames is None:
            _, h, w, c = data.shape
            self._frames = self._group.create_dataset(
                "frames", shape=(0, h, w, c), maxshape=(None, h, w, c), dtype=np.uint8,
                chunks=(self.block, h, w, c), fletcher32=True, **self.compression)
        start = self._frames.shape[0]
        self._frames.resize(start + n, axis=0)
        self._frames[start:start + n] = data[:n]
        rest = data[n:]
        self._buffer, self._buffered = ([rest], len(rest)) if len(rest) else ([], 0)

    def end_video(self, frame_indices: np.ndarray, times: np.ndarray, attrs: dict[str, Any],
                  datasets: dict[str, np.ndarray] | None = None) -> None:
        """Finish the current video with the source index and time (s) of each stored frame, and further
        per-frame `datasets` (each with one value per stored frame)."""
        self._flush(final=True)
        stored = 0 if self._frames is None else self._frames.shape[0]
        per_frame = {"frame_indices": np.asarray(frame_indices, dtype=np.int64),
                     "times": np.asarray(times, dtype=np.float64), **(datasets or {})}
        for name, data in per_frame.items():
            if len(data) != stored:
                raise ValueError(f"{stored} frames written but {len(data)} values of {name} given")
            self._group.create_dataset(name, data=data, fletcher32=bool(len(data)))
        for key, value in attrs.items():
            self._group.attrs[key] = value
        self.videos.append(self._video_id)
        self._group, self._frames = None, None

    def abort_video(self) -> None:
        """Drop the current video's partial entry (it failed part-way)."""
        if self._group is not None:
            name = self._group.name
            self._group, self._frames, self._buffer, self._buffered = None, None, [], 0
            del self._file[name]

    def add_failure(self, video_id: str, path: str, reason: str) -> None:
        """Record that a video could not be made into this view, and why."""
        self.failures.append({"id": video_id, "path": path, "reason": reason})

    def commit(self) -> Path:
        """Close the partial file and publish it under the shard's final name."""
        self._file.create_dataset("failures", data=json.dumps(self.failures))
        self._file.attrs["complete"] = True
        self._file.close()
        with open(self.partial, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.partial, self.final)
        fsync_dir(self.final.parent)
        return self.final

    def discard(self) -> None:
        """Close and delete the partial file (after an error in the task itself)."""
        try:
            self._file.close()
        finally:
            self.partial.unlink(missing_ok=True)
