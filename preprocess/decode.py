"""Decode a video with PyAV into stored frames: one in `stride`, short side resized, with its successor.

A stored frame t is emitted only once source frame t+1 has been decoded (flow needs t -> t+1), so the
last source frame is never stored; this rule is the same whatever views are asked for, which keeps
every view of a video on exactly the same frame indices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from .errors import VideoError

# A file whose decoded frame count falls this far below what its container declares is called truncated.
TRUNCATION_TOLERANCE = 0.9


@dataclass
class VideoMeta:
    """What the source video was: frame rate, display size (after rotation), rotation and frame counts."""

    fps: float = 0.0
    original_size: tuple[int, int] = (0, 0)  # (height, width) as displayed
    rotation: int = 0
    declared_frames: int = 0
    decoded_frames: int = 0
    codec: str = ""


@dataclass
class FramePair:
    """A stored frame (RGB, resized) and, when asked for, its source successor (for flow)."""

    index: int
    time: float
    rgb: np.ndarray
    next_rgb: np.ndarray | None = None
    source: np.ndarray | None = None      # the upright frame at its original size (pose/seg models)
    _grey: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def grey(self) -> tuple[np.ndarray, np.ndarray]:
        """Greyscale of the frame and its successor, computed once and shared by every flow view."""
        if "pair" not in self._grey:
            if self.next_rgb is None:
                raise ValueError("this frame pair was decoded without its successor")
            self._grey["pair"] = (cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY),
                                  cv2.cvtColor(self.next_rgb, cv2.COLOR_RGB2GRAY))
        return self._grey["pair"]


def target_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the short side equal to `short_side` and the aspect ratio kept."""
    if height <= width:
        return short_side, max(1, int(round(width * short_side / height)))
    return max(1, int(round(height * short_side / width))), short_side


def resize_short_side(img: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so the short side is `short_side`, with area interpolation (a no-op when already there)."""
    h, w = img.shape[:2]
    th, tw = target_size(h, w, short_side)
    if (th, tw) == (h, w):
        return img
    return cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)


def _rotate(img: np.ndarray, rotation: int) -> np.ndarray:
    """Apply the display-matrix rotation (counter-clockwise degrees, as PyAV reports it)."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def _upright(frame: av.VideoFrame, reformatter: VideoReformatter, rotation: int) -> np.ndarray:
    """Decoded frame -> upright RGB at its own size (one reformatter per video: 3-4x cheaper than a new one)."""
    return _rotate(reformatter.reformat(frame, format="rgb24").to_ndarray(), rotation)


def _open_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams if s.type == "video"]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoError(f"no video stream (streams: {', '.join(kinds)})")
    return streams[0]


def decode_pairs(path: str, stride: int, short_side: int, with_next: bool, meta: VideoMeta,
                 threads: int = 1, with_source: bool = False) -> Iterator[FramePair]:
    """Yield the stored frames of a video in order, filling `meta` as decoding goes.

    Raises VideoError for anything that makes the video unusable: unreadable or non-video file, no
    video stream, a decode error, a truncated stream, or fewer than two frames.
    """
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        container = av.open(path, mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"cannot open: {_describe(exc)}") from None
    with container:
        stream = _open_video_stream(container)
        stream.thread_count = max(1, threads)
        stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        meta.codec = stream.codec_context.name if stream.codec_context else ""
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        meta.fps = float(rate) if rate else 0.0
        meta.declared_frames = int(stream.frames or 0)
        pending: FramePair | None = None
        reformatter = VideoReformatter()
        count = 0
        try:
            for frame in container.decode(stream):
                if count == 0:
                    meta.rotation = int(frame.rotation or 0)
                    h, w = frame.height, frame.width
                    meta.original_size = (w, h) if meta.rotation % 180 else (h, w)
                index = count
                count += 1
                meta.decoded_frames = count
                if pending is not None:
                    if with_next:
                        pending.next_rgb = resize_short_side(_upright(frame, reformatter, meta.rotation), short_side)
                    yield pending
                    pending = None
                if index % stride == 0:
                    time = float(frame.time) if frame.time is not None else index / (meta.fps or 1.0)
                    upright = _upright(frame, reformatter, meta.rotation)
                    pending = FramePair(index, time, resize_short_side(upright, short_side),
                                        source=upright if with_source else None)
        except av.error.FFmpegError as exc:
            raise VideoError(f"decode error after {count} frames: {_describe(exc)}") from None
    if count < 2:
        raise VideoError(f"too short: {count} decodable frame(s), at least 2 are needed")
    if meta.declared_frames > 0 and count < TRUNCATION_TOLERANCE * meta.declared_frames:
        raise VideoError(f"truncated: decoded {count} of {meta.declared_frames} frames the container declares")


def _describe(exc: BaseException) -> str:
    """FFmpeg's message without its errno and file name (the failures record names the file)."""
    text = getattr(exc, "strerror", None) if isinstance(exc, av.error.FFmpegError) else None
    text = text or str(exc).strip() or type(exc).__name__
    return " ".join(str(text).split())
