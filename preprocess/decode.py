"""Decode a video with PyAV into stored frames: one in `stride`, short side resized, with its flow target.

A stored frame t is emitted only once source frame t+1 has been decoded, so the last source frame is never
stored; this rule is the same whatever views are asked for, which keeps every view of a video on exactly
the same frame indices. The flow target of t is t+1, or, when t+1 repeats t, the next source frame that
differs (repeats.py); which one is recorded per stored frame.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from .errors import VideoError
from .frame_policy import MAX_SKIP, FramePolicy
from .repeats import grey, is_repeat


@dataclass
class VideoMeta:
    """What the source video was: frame rate, display size (after rotation), rotation and frame counts."""

    fps: float = 0.0
    original_size: tuple[int, int] = (0, 0)  # (height, width) as displayed
    rotation: int = 0
    declared_frames: int = 0
    decoded_frames: int = 0
    codec: str = ""
    expected_frames: int = 0        # decoded + missing at the end (from the declared count or duration)
    missing_end_frames: int = 0
    long_side_capped: bool = False  # the long side was bounded by max_long_side (an extreme aspect ratio)
    repeated_successors: int = 0    # stored frames whose source successor repeats them


@dataclass
class FramePair:
    """A stored frame (RGB, resized) and, when asked for, its source successor (for flow)."""

    index: int
    time: float
    rgb: np.ndarray
    next_rgb: np.ndarray | None = None
    source: np.ndarray | None = None      # the upright frame at its original size (pose/seg models)
    next_index: int | None = None         # the source frame next_rgb is (the flow target)
    successor_repeats: bool = False       # source frame t+1 repeats this one
    resolved: bool = False                # the flow target is chosen
    _grey: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def grey_self(self) -> np.ndarray:
        """Greyscale of the frame, computed once."""
        if "self" not in self._grey:
            self._grey["self"] = grey(self.rgb)
        return self._grey["self"]

    def grey(self) -> tuple[np.ndarray, np.ndarray]:
        """Greyscale of the frame and its flow target, computed once and shared by every flow view."""
        if self.next_rgb is None:
            raise ValueError("this frame pair was decoded without its successor")
        if "next" not in self._grey:
            self._grey["next"] = grey(self.next_rgb)
        return self.grey_self(), self._grey["next"]


def target_size(height: int, width: int, short_side: int, max_long_side: int = 0) -> tuple[int, int]:
    """(height, width) with the short side equal to `short_side` and the aspect ratio kept; when the long
    side would exceed `max_long_side` (0: no bound), it is `max_long_side` and the short side shrinks."""
    flip = height > width
    short, long = (width, height) if flip else (height, width)
    new_short, new_long = short_side, max(1, int(round(long * short_side / short)))
    if max_long_side and new_long > max_long_side:
        new_short, new_long = max(1, int(round(short * max_long_side / long))), max_long_side
    return (new_long, new_short) if flip else (new_short, new_long)


def resize_short_side(img: np.ndarray, short_side: int, max_long_side: int = 0) -> np.ndarray:
    """Resize so the short side is `short_side` (long side at most `max_long_side`), with area interpolation
    (a no-op when already there)."""
    h, w = img.shape[:2]
    th, tw = target_size(h, w, short_side, max_long_side)
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
                 threads: int = 1, with_source: bool = False,
                 policy: FramePolicy | None = None) -> Iterator[FramePair]:
    """Yield the stored frames of a video in order, filling `meta` as decoding goes.

    Raises VideoError for anything that makes the video unusable: unreadable or non-video file, no
    video stream, a decode error, a stream that ends more than `policy.max_missing_frames` frames before
    its declared frame count or duration, or fewer than two frames.
    """
    policy = policy or FramePolicy()
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
        declared_end = _declared_end(container, stream)
        successors = Successors(policy, with_next)
        reformatter = VideoReformatter()
        count, last_time = 0, None
        try:
            for frame in container.decode(stream):
                if count == 0:
                    meta.rotation = int(frame.rotation or 0)
                    h, w = frame.height, frame.width
                    meta.original_size = (w, h) if meta.rotation % 180 else (h, w)
                    meta.long_side_capped = target_size(*meta.original_size, short_side) != \
                        target_size(*meta.original_size, short_side, policy.max_long_side)
                index = count
                count += 1
                meta.decoded_frames = count
                last_time = frame.time if frame.time is not None else last_time
                upright = _Lazy(lambda: _upright(frame, reformatter, meta.rotation))
                small = _Lazy(lambda: resize_short_side(upright(), short_side, policy.max_long_side))
                yield from successors.offer(index, small)
                if index % stride == 0:
                    time = float(frame.time) if frame.time is not None else index / (meta.fps or 1.0)
                    successors.add(FramePair(index, time, small(), source=upright() if with_source else None))
        except av.error.FFmpegError as exc:
            raise VideoError(f"decode error after {count} frames: {_describe(exc)}") from None
        yield from successors.finish()
        meta.repeated_successors = successors.repeats
    if count < 2:
        raise VideoError(f"too short: {count} decodable frame(s), at least 2 are needed")
    _check_complete(meta, count, last_time, declared_end, policy.max_missing_frames)


class _Lazy:
    """A value computed on first use, at most once (a frame resized only if some stored frame needs it)."""

    def __init__(self, make: Callable[[], np.ndarray]) -> None:
        self._make, self._value = make, None

    def __call__(self) -> np.ndarray:
        if self._value is None:
            self._value = self._make()
        return self._value


class Successors:
    """Pairs each stored frame with its flow target: source frame t+1, or under the next-different rule the
    first of t+1 .. t+MAX_SKIP that does not repeat t (t+1 when all do: the scene is still). Stored frames
    come out in order, each once its target is known; a frame with no successor at all is never stored."""

    def __init__(self, policy: FramePolicy, with_next: bool) -> None:
        self.policy, self.with_next = policy, with_next
        self.pending: deque[FramePair] = deque()
        self.repeats = 0

    def add(self, pair: FramePair) -> None:
        self.pending.append(pair)

    def offer(self, index: int, small: Callable[[], np.ndarray]) -> Iterator[FramePair]:
        """Source frame `index` (its stored-size RGB from `small()`) as a candidate target of waiting frames."""
        for pair in self.pending:
            if pair.resolved:
                continue
            if pair.next_index is None:  # the first successor, t+1: the target unless it repeats t
                pair.next_index = index
                if not self.with_next:
                    pair.resolved = True
                    continue
                pair.next_rgb = small()
                pair.successor_repeats = is_repeat(pair.grey_self(), grey(pair.next_rgb),
                                                   self.policy.repeat_max_changed)
                self.repeats += pair.successor_repeats
                pair.resolved = not (pair.successor_repeats and self.policy.skips_repeats)
            elif not is_repeat(pair.grey_self(), grey(small()), self.policy.repeat_max_changed):
                pair.next_index, pair.next_rgb, pair.resolved = index, small(), True
            elif index - pair.index >= MAX_SKIP:
                pair.resolved = True  # still within MAX_SKIP frames: keep t+1
        yield from self._ready()

    def finish(self) -> Iterator[FramePair]:
        """The end of the video: frames still looking keep t+1; a frame with no successor is dropped."""
        for pair in self.pending:
            pair.resolved = pair.next_index is not None
        yield from self._ready()

    def _ready(self) -> Iterator[FramePair]:
        while self.pending and self.pending[0].resolved:
            yield self.pending.popleft()


def _declared_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """When the video stream says it ends, in seconds: its own duration, else its DURATION tag (Matroska,
    WebM), else the container's duration (which counts every stream)."""
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    if stream.duration and stream.time_base:
        return start + float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            h, m, s = tag.split(":")
            return start + int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    if container.duration:
        return container.duration / 1e6
    return None


def _check_complete(meta: VideoMeta, count: int, last_time: float | None, declared_end: float | None,
                    tolerance: int) -> None:
    """Compare what was decoded with what the container declares; record the gap, or fail beyond tolerance."""
    missing = max(0, meta.declared_frames - count)
    if declared_end is not None and last_time is not None and meta.fps > 0:
        missing = max(missing, int(round((declared_end - (float(last_time) + 1.0 / meta.fps)) * meta.fps)))
    meta.missing_end_frames = missing
    meta.expected_frames = count + missing
    if missing > tolerance:
        claimed = f"{meta.declared_frames} frames" if meta.declared_frames else f"{declared_end:.2f} s"
        raise VideoError(f"truncated: decoded {count} frames (to {float(last_time or 0):.2f} s) of the {claimed} "
                         f"the container declares, {missing} missing (tolerance: --max-missing-frames {tolerance})")


def _describe(exc: BaseException) -> str:
    """FFmpeg's message without its errno and file name (the failures record names the file)."""
    text = getattr(exc, "strerror", None) if isinstance(exc, av.error.FFmpegError) else None
    text = text or str(exc).strip() or type(exc).__name__
    return " ".join(str(text).split())
