"""The learning benchmark's videos (`python -m preprocess sample --variant learning`): classes defined by
motion alone, appearance drawn independently of the class.

Every video is one random texture (its own colours, contrast and grain) moved by one affine step per
frame. The class fixes only the kind of the motion, and its sign where a horizontal flip keeps it: pan up,
pan down, zoom in, zoom out, pan sideways (left or right, drawn per video), rotate (either way, drawn per
video), then pan left and pan right when more classes are asked for. Every training command flips clips
horizontally at random (as DPC and CoCon do for UCF101), which turns a left pan into a right pan and a clockwise
turn into an anticlockwise one, so the six default classes are the ones a flip maps to themselves; speed,
direction jitter, centre, start position and start angle are drawn per video. The range of poses a video passes through is symmetric (a
zoom runs from 1/sqrt(S) to sqrt(S) of the texture's scale, a rotation starts at a random angle), so the set
of frames of a zoom-in video is distributed like that of a zoom-out video: only their order in time tells
the classes apart. RGB shows the motion over a few frames; optical flow shows it in every pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .synthetic import affine_step, encode_video, moving_frames

# Class names in label order (folders sort alphabetically, so the store's ids follow the names, not this order).
MOTIONS: tuple[str, ...] = ("pan_up", "pan_down", "zoom_in", "zoom_out", "pan_sideways", "rotate",
                            "pan_left", "pan_right")
DEFAULT_SIZE = (64, 80)           # (height, width) of the rendered frames
DEFAULT_FRAMES = 128              # 42 stored frames at stride 3: one whole 8x5-block clip
PAN_SPEED = (1.5, 3.0)            # pixels per frame
PAN_JITTER = 0.25                 # the other axis moves by up to this fraction of the speed, either sign
ROTATE_SPEED = (1.5, 3.5)         # degrees per frame
ZOOM_SPEED = (0.012, 0.020)       # relative scale change per frame
CENTRE_JITTER = 0.1               # rotation and zoom centres: up to this fraction of the frame off centre
BLUR = (3.0, 6.0)                 # texture grain: Gaussian sigma of the noise, pixels
CONTRAST = (25.0, 55.0)           # std of the texture's grey levels before clipping


@dataclass(frozen=True)
class VideoSpec:
    """What one benchmark video is: its class, per-frame motion, start pose and texture seed."""

    motion: str          # the class
    step: np.ndarray     # 3x3 per-frame affine motion in frame coordinates
    start: np.ndarray    # 3x3 pose of the first frame relative to the texture crop
    offset: tuple[int, int]
    texture_shape: tuple[int, int]
    texture_seed: int


def appearance_statistics(frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Order-free appearance statistics of a video's RGB frames (T, H, W, 3): an 8-bin histogram per colour
    channel and the mean absolute horizontal and vertical gradient / 10 (the texture's grain and scale). They
    tell videos apart but not classes: what a feature that ranks videos by them has learnt is appearance."""
    f = np.asarray(frames, dtype=np.float32)
    hists = [np.histogram(f[..., c], bins=8, range=(0, 256))[0] / f[..., c].size for c in range(3)]
    grain = [np.abs(np.diff(f, axis=1)).mean() / 10, np.abs(np.diff(f, axis=2)).mean() / 10]
    return np.concatenate(hists + [np.array(grain)])


def random_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth colour texture (uint8 RGB) with its own palette: blurred noise of random grain, mixed into
    colours by a random matrix around a random mean colour."""
    noise = rng.standard_normal((height, width, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), rng.uniform(*BLUR))
    noise = (noise - noise.mean(axis=(0, 1))) / np.maximum(noise.std(axis=(0, 1)), 1e-6)
    mix = rng.standard_normal((3, 3)).astype(np.float32)
    mix /= np.maximum(np.linalg.norm(mix, axis=0, keepdims=True), 1e-6)
    mean = rng.uniform(70.0, 185.0, size=3).astype(np.float32)
    img = mean + rng.uniform(*CONTRAST) * (noise @ mix)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _matrix_power(step: np.ndarray, exponent: float) -> np.ndarray:
    """step ** exponent for an affine step built by `affine_step` (rotation, scale, translation), via its
    logarithm; used to start a zoom half-way back, so that its scales are symmetric about 1."""
    from scipy.linalg import expm, logm

    return np.real(expm(exponent * logm(step)))


def video_spec(motion: str, rng: np.random.Generator, num_frames: int, size: tuple[int, int],
               label: str | None = None) -> VideoSpec:
    """Draw one video of `motion` (a class, or for the two-way classes the direction drawn): speed, jitter,
    centre and start pose from `rng`; `label` is its class when it differs from `motion`."""
    h, w = size
    centre = (w / 2.0 + rng.uniform(-1, 1) * CENTRE_JITTER * w, h / 2.0 + rng.uniform(-1, 1) * CENTRE_JITTER * h)
    start = np.eye(3)
    if motion in ("pan_sideways", "rotate"):   # the direction is drawn per video, not by the class
        motion_drawn = {"pan_sideways": ("pan_left", "pan_right"), "rotate": ("rotate_cw", "rotate_acw")}[motion]
        return video_spec(motion_drawn[int(rng.integers(2))], rng, num_frames, size, label=motion)
    if motion.startswith("pan"):
        speed, jitter = rng.uniform(*PAN_SPEED), rng.uniform(-1, 1) * PAN_JITTER
        along, across = {"pan_left": (-1, 0), "pan_right": (1, 0), "pan_up": (0, -1), "pan_down": (0, 1)}[motion]
        dx = speed * (along if along else jitter)
        dy = speed * (across if across else jitter)
        step = affine_step(dx=dx, dy=dy)
        travel = (int(np.ceil(abs(dy) * num_frames)), int(np.ceil(abs(dx) * num_frames)))
        margin = (h // 2, w // 2)
        shape = (h + travel[0] + 2 * margin[0], w + travel[1] + 2 * margin[1])
        # Content moves by (dx, dy) per frame, so the crop walks the other way: start it at the far side.
        oy = margin[0] + (travel[0] if dy > 0 else 0)
        ox = margin[1] + (travel[1] if dx > 0 else 0)
        oy += int(rng.integers(-margin[0] // 2, margin[0] // 2 + 1))
        ox += int(rng.integers(-margin[1] // 2, margin[1] // 2 + 1))
    elif motion.startswith("rotate"):
        sign = 1.0 if motion == "rotate_acw" else -1.0  # OpenCV's positive angle turns anticlockwise on screen
        step = affine_step(angle_deg=sign * rng.uniform(*ROTATE_SPEED), center=centre)
        start = affine_step(angle_deg=rng.uniform(0.0, 360.0), center=centre)
        shape, (oy, ox) = (3 * h, 3 * w), (h, w)
    elif motion.startswith("zoom"):
        rate = rng.uniform(*ZOOM_SPEED)
        step = affine_step(scale=(1.0 + rate) if motion == "zoom_in" else 1.0 / (1.0 + rate), center=centre)
        start = _matrix_power(step, -(num_frames - 1) / 2.0)
        lowest = (1.0 + ZOOM_SPEED[1]) ** (-(num_frames - 1) / 2.0)
        reach = int(np.ceil(max(h, w) / lowest))
        shape, (oy, ox) = (reach + 2 * h, reach + 2 * w), ((reach + 2 * h - h) // 2, (reach + 2 * w - w) // 2)
    else:
        raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
    return VideoSpec(label or motion, step, start, (oy, ox), shape, int(rng.integers(2**31)))


def render(spec: VideoSpec, num_frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """The RGB frames (h, w, 3) uint8 of one video."""
    texture = random_texture(*spec.texture_shape, np.random.default_rng(spec.texture_seed))
    return moving_frames(texture, size, num_frames, spec.step, offset=spec.offset, start=spec.start)


def video_specs(num_classes: int = 6, per_class: int = 20, seed: int = 0, num_frames: int = DEFAULT_FRAMES,
                size: tuple[int, int] = DEFAULT_SIZE) -> list[tuple[str, int, VideoSpec]]:
    """(class name, index within class, spec) of every video. Video i of a class depends only on
    (seed, class, i): asking for more videos or classes adds videos and changes none."""
    if not 2 <= num_classes <= len(MOTIONS):
        raise ValueError(f"classes must be in 2..{len(MOTIONS)}, got {num_classes}")
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    out = []
    for ci, motion in enumerate(MOTIONS[:num_classes]):
        for vi in range(per_class):
            rng = np.random.default_rng([seed, ci, vi])
            out.append((motion, vi, video_spec(motion, rng, num_frames, size)))
    return out


def write_learning_set(out: str | Path, num_classes: int = 6, per_class: int = 20, seed: int = 0,
                       num_frames: int = DEFAULT_FRAMES, size: tuple[int, int] = DEFAULT_SIZE) -> list[Path]:
    """Write the benchmark's videos as `out/<motion>/<motion>_NNN.mp4`; their paths."""
    out = Path(out)
    paths = []
    for motion, vi, spec in video_specs(num_classes, per_class, seed, num_frames, size):
        frames = render(spec, num_frames, size)
        paths.append(encode_video(out / motion / f"{motion}_{vi + 1:03d}.mp4", frames))
    return paths
