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
        if model_selection not in (0, 1):
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


POSE_BACKENDS = {"mediapipe": MediapipePose}
SEG_BACKENDS = {"mediapipe": MediapipeSeg}
