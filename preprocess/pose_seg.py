"""Pose-heatmap and person-segmentation backends behind one small protocol, chosen by name.

`mediapipe` (the offline default): mediapipe 0.10.21 ships its pose (model_complexity=1) and selfie
segmentation models inside the wheel, so it runs with no download, on the CPU. Heavy imports happen
inside the backends, so the rest of the pipeline never needs them.
"""

from __future__ import annotations

import hashlib
import os
import importlib.metadata
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .errors import UserError
from .heatmaps import COMBINE, render_heatmaps, to_uint8

MEDIAPIPE_VERSION = "0.10.21"
SELFIE_MODELS = (0, 1)   # mediapipe selfie segmentation: 0 general, 1 landscape
MEDIAPIPE_INSTALL = (f"pip install --no-deps mediapipe=={MEDIAPIPE_VERSION} && "
                     f"pip install -c constraints.txt -e '.[pose]'")
# mediapipe's 33 landmarks -> COCO-17 order (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
MEDIAPIPE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


class FrameModel(Protocol):
    """Per video: `reset()` at its start, then `__call__(frames)` -> (N, H, W, C) uint8 maps."""

    params: dict[str, Any]

    def reset(self) -> None: ...

    def __call__(self, frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray: ...


def _import_mediapipe() -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")        # mediapipe's C++ logging: warnings and up only
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe as mp
    except ImportError:
        raise UserError(f"the mediapipe backend needs mediapipe {MEDIAPIPE_VERSION}: {MEDIAPIPE_INSTALL}") from None
    version = importlib.metadata.version("mediapipe")
    if version != MEDIAPIPE_VERSION:
        raise UserError(f"the mediapipe backend needs mediapipe {MEDIAPIPE_VERSION} (its models ship in that "
                        f"wheel), found {version}: {MEDIAPIPE_INSTALL}")
    return mp


def _digest(mp: Any, *relative: str) -> dict[str, str]:
    """sha256 (first 16 hex) of the model files a backend loads, for the store's attributes."""
    root = Path(mp.__file__).parent
    out = {}
    for rel in relative:
        out[rel] = hashlib.sha256((root / rel).read_bytes()).hexdigest()[:16]
    return out


class MediapipePose:
    """mediapipe Pose (video mode, model_complexity 1): one person, COCO-17 Gaussians peaked at visibility."""

    def __init__(self, sigma: float = 2.0, combine: str = "max", min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        if combine not in COMBINE:
            raise UserError(f"--pose-combine must be one of {', '.join(COMBINE)}")
        if not sigma > 0:
            raise UserError(f"--pose-sigma must be positive, got {sigma}")
        self._mp = _import_mediapipe()
        self.sigma, self.combine = float(sigma), combine
        self._conf = (float(min_detection_confidence), float(min_tracking_confidence))
        self._model = None
        self.params = {
            "backend": "mediapipe", "model": "pose, model_complexity=1, video mode",
            "mediapipe": MEDIAPIPE_VERSION, "keypoints": "COCO-17", "sigma_px": self.sigma, "combine": combine,
            "peak": "landmark visibility", "min_detection_confidence": self._conf[0],
            "min_tracking_confidence": self._conf[1],
            "model_digests": _digest(self._mp, "modules/pose_detection/pose_detection.tflite",
                                     "modules/pose_landmark/pose_landmark_full.tflite"),
        }

    def reset(self) -> None:
        if self._model is not None:
            self._model.close()
        self._model = self._mp.solutions.pose.Pose(
            static_image_mode=False, model_complexity=1, enable_segmentation=False,
            min_detection_confidence=self._conf[0], min_tracking_confidence=self._conf[1])

    def keypoints(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, 17, 2) normalised (x, y) and (P, 17) visibilities of the people found (P is 0 or 1)."""
        if self._model is None:
            self.reset()
        result = self._model.process(frame)
        if not result.pose_landmarks:
            return np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32)
        lms = result.pose_landmarks.landmark
        xy = np.array([[lms[i].x, lms[i].y] for i in MEDIAPIPE_TO_COCO17], np.float32)
        vis = np.array([lms[i].visibility for i in MEDIAPIPE_TO_COCO17], np.float32)
        return xy[None], vis[None]

    def __call__(self, frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        h, w = size
        out = []
        for frame in frames:
            xy, vis = self.keypoints(frame)
            pix = xy * np.array([w, h], np.float32)          # normalised -> output pixel coordinates
            pix -= 0.5                                       # pixel centres sit at integer coordinates
            out.append(to_uint8(render_heatmaps(pix, vis, (h, w), self.sigma, self.combine)))
        return np.stack(out)


class MediapipeSeg:
    """mediapipe selfie segmentation: the probability that a pixel shows a person."""

    def __init__(self, model_selection: int = 0) -> None:
        if model_selection not in SELFIE_MODELS:
            raise UserError(f"--seg-model must be 0 (general) or 1 (landscape), got {model_selection}")
        self._mp = _import_mediapipe()
        self.model_selection = model_selection
        self._model = None
        name = "selfie_segmentation" if model_selection == 0 else "selfie_segmentation_landscape"
        self.params = {"backend": "mediapipe", "model": f"{name} (model_selection={model_selection})",
                       "mediapipe": MEDIAPIPE_VERSION, "value": "P(person) x 255",
                       "model_digests": _digest(self._mp, f"modules/selfie_segmentation/{name}.tflite")}

    def reset(self) -> None:
        if self._model is None:
            self._model = self._mp.solutions.selfie_segmentation.SelfieSegmentation(
                model_selection=self.model_selection)

    def __call__(self, frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        self.reset()
        h, w = size
        out = []
        for frame in frames:
            mask = self._model.process(frame).segmentation_mask.astype(np.float32)
            small = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
            out.append(to_uint8(small)[..., None])
        return np.stack(out)


POSE_BACKENDS = ("mediapipe", "mmpose")
SEG_BACKENDS = ("mediapipe", "mmseg")


def mediapipe_boxes(pose: MediapipePose, min_visibility: float = 0.3) -> Any:
    """A box source for top-down models: the box around the landmarks mediapipe sees, in frame pixels."""

    def boxes(frame: np.ndarray) -> np.ndarray:
        xy, vis = pose.keypoints(frame)
        if not len(xy) or not (vis[0] >= min_visibility).any():
            return np.zeros((0, 4), np.float32)
        h, w = frame.shape[:2]
        pts = xy[0][vis[0] >= min_visibility] * np.array([w, h], np.float32)
        return np.array([[*pts.min(axis=0), *pts.max(axis=0)]], np.float32)

    return boxes


class _WithBoxTracker:
    """A top-down pose model whose boxes come from mediapipe, reset together per video."""

    def __init__(self, model: Any, tracker: MediapipePose) -> None:
        self.model, self.tracker = model, tracker
        self.params = {**model.params, "boxes": "mediapipe pose landmarks (min visibility 0.3)",
                       "box_model_digests": tracker.params["model_digests"]}

    def reset(self) -> None:
        self.tracker.reset()
        self.model.reset()

    def __call__(self, frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        return self.model(frames, size)


def _need(value: Any, option: str, kind: str, backend: str) -> None:
    """One line when an mm backend lacks a config or checkpoint option."""
    if not value:
        raise UserError(f"--{kind}-backend {backend} needs {option} (a local file: no weights are downloaded)")


def make_pose_model(options: Any) -> FrameModel:
    """The pose backend a run asks for (options: preprocess.views.ViewOptions)."""
    if options.pose_backend == "mediapipe":
        return MediapipePose(sigma=options.pose_sigma, combine=options.pose_combine)
    if options.pose_backend != "mmpose":
        raise UserError(f"unknown pose backend {options.pose_backend!r}; choose from {', '.join(POSE_BACKENDS)}")
    _need(options.pose_config, "--pose-config", "pose", "mmpose")
    _need(options.pose_checkpoint, "--pose-checkpoint", "pose", "mmpose")
    from .mm_backends import MMPose
    if options.det_config:
        _need(options.det_checkpoint, "--det-checkpoint", "pose", "mmpose")
        return MMPose(options.pose_config, options.pose_checkpoint, options.det_config, options.det_checkpoint,
                      sigma=options.pose_sigma, combine=options.pose_combine, device=options.model_device)
    tracker = MediapipePose()
    model = MMPose(options.pose_config, options.pose_checkpoint, sigma=options.pose_sigma,
                   combine=options.pose_combine, device=options.model_device, box_source=mediapipe_boxes(tracker))
    return _WithBoxTracker(model, tracker)


def make_seg_model(options: Any) -> FrameModel:
    """The segmentation backend a run asks for."""
    if options.seg_backend == "mediapipe":
        return MediapipeSeg(model_selection=options.seg_model)
    if options.seg_backend != "mmseg":
        raise UserError(f"unknown seg backend {options.seg_backend!r}; choose from {', '.join(SEG_BACKENDS)}")
    _need(options.seg_config, "--seg-config", "seg", "mmseg")
    _need(options.seg_checkpoint, "--seg-checkpoint", "seg", "mmseg")
    from .mm_backends import MMSeg
    return MMSeg(options.seg_config, options.seg_checkpoint, person_class=options.seg_person_class,
                 device=options.model_device)
