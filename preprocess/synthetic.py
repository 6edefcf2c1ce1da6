"""Synthetic videos with known motion, encoded with PyAV: the built-in sample and the test fixtures.

Motion is exact by construction: frame t is a warp of one texture by t times a known affine step,
so the true flow from frame t to t+1 is known at every pixel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import av
import cv2
import numpy as np


def textured_image(height: int, width: int, seed: int = 0, blur: float = 2.0) -> np.ndarray:
    """A smooth random colour texture (uint8 RGB): rich gradients, no flat areas, good for flow."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), blur)
    img -= img.min(axis=(0, 1))
    img /= np.maximum(img.max(axis=(0, 1)), 1e-6)
    return (img * 255).astype(np.uint8)


def affine_step(dx: float = 0.0, dy: float = 0.0, angle_deg: float = 0.0, scale: float = 1.0,
                center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """3x3 matrix of one frame's motion: rotate by angle and scale about `center`, then translate."""
    m = cv2.getRotationMatrix2D(center, angle_deg, scale)
    m[:, 2] += (dx, dy)
    return np.vstack([m, [0.0, 0.0, 1.0]])


def moving_frames(texture: np.ndarray, size: tuple[int, int], num_frames: int, step: np.ndarray,
                  offset: tuple[int, int] = (0, 0), start: np.ndarray | None = None) -> list[np.ndarray]:
    """Frames (h, w) cut from `texture` at `offset`, where content moves by `step` every frame.

    `step` and `start` (the first frame's pose, default none) act in frame coordinates; the crop keeps the
    frame away from the texture's borders.
    """
    h, w = size
    oy, ox = offset
    to_frame = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]], dtype=np.float64)
    if start is not None:
        to_frame = start @ to_frame
    frames, motion = [], np.eye(3)
    for _ in range(num_frames):
        m = motion @ to_frame
        frames.append(cv2.warpAffine(texture, m[:2], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
        motion = step @ motion
    return frames


def true_flow(step: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The flow (h, w, 2) in pixels from a frame to the next under a per-frame affine `step`."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    nx = step[0, 0] * xs + step[0, 1] * ys + step[0, 2]
    ny = step[1, 0] * xs + step[1, 1] * ys + step[1, 2]
    return np.stack([nx - xs, ny - ys], axis=-1).astype(np.float32)


def encode_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 25.0, codec: str = "libx264",
                 crf: int = 12, pix_fmt: str = "yuv420p", rotation: int = 0) -> Path:
    """Encode RGB frames into a video file with PyAV (`rotation`: display-matrix degrees, counter-clockwise)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=int(round(fps)) if float(fps).is_integer() else fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            # with its macroblock-tree rate control (and adaptive quantisation) x264 wrote different files, and
            # pixels, for identical frames from run to run on the development machine; without it they are equal
            stream.options = {"crf": str(crf), "x264-params": "mbtree=0"}
        elif codec == "libx265":
            stream.options = {"crf": str(crf)}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": str(crf), "b": "0"}
        if rotation:
            stream.set_display_rotation(rotation)
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path



def _sample_steps(size: tuple[int, int]) -> dict[str, list[np.ndarray]]:
    """Per class, the per-frame motions of its videos: one kind of motion per class (pan right, turn
    anticlockwise, zoom in), its videos differing in speed and angle, so that held-out videos are learnable."""
    h, w = size
    c = (w / 2.0, h / 2.0)
    return {
        "pan": [affine_step(dx=1.5, dy=0.3), affine_step(dx=1.2, dy=-0.5), affine_step(dx=1.8, dy=0.6),
                affine_step(dx=1.0, dy=-0.2)],
        "rotate": [affine_step(angle_deg=a, center=c) for a in (1.0, 0.8, 1.2, 0.6)],
        "zoom": [affine_step(scale=s, center=c) for s in (1.010, 1.008, 1.012, 1.006)],
    }


MAX_PER_CLASS = 4


def write_sample(out: str | Path, num_frames: int = 128, size: tuple[int, int] = (120, 160),
                 per_class: int = MAX_PER_CLASS) -> list[Path]:
    """The built-in sample: a folder per class (pan, rotate, zoom), `per_class` short videos each (at most 4),
    each with its own texture and known motion."""
    if not 1 <= per_class <= MAX_PER_CLASS:
        raise ValueError(f"per_class must be in 1..{MAX_PER_CLASS}, got {per_class}")
    out = Path(out)
    paths = []
    for ci, (name, steps) in enumerate(sorted(_sample_steps(size).items())):
        for vi, step in enumerate(steps[:per_class]):
            texture = textured_image(size[0] * 2, size[1] * 2, seed=10 * ci + vi)
            frames = moving_frames(texture, size, num_frames, step, offset=(size[0] // 2, size[1] // 2))
            paths.append(encode_video(out / name / f"{name}_{vi + 1:02d}.mp4", frames))
    return paths


def known_motion_pairs(height: int, width: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Grey frame pairs with known motion, (grey t, grey t+1, true flow) by name: a sub-pixel translation
    (1.37, -0.62) px, a 1.2 degree rotation and a 1.5% zoom about the centre (the TV-L1 tests and bench)."""
    centre = (width / 2, height / 2)
    motions = {"translation": affine_step(dx=1.37, dy=-0.62),
               "rotation": affine_step(angle_deg=1.2, center=centre),
               "zoom": affine_step(scale=1.015, center=centre)}
    out = {}
    for k, (name, step) in enumerate(motions.items()):
        frames = moving_frames(textured_image(2 * height, 2 * width, seed=3 + k, blur=1.5), (height, width), 2,
                               step, offset=(height // 2, width // 2))
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        out[name] = (grey[0], grey[1], true_flow(step, (height, width)))
    return out
