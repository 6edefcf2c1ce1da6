"""OpenMMLab backends: mmpose 1.x top-down heatmap pose and mmsegmentation 1.x person segmentation.

Install with `bash scripts/install_openmmlab.sh .venv` (CPU stack: mmcv-lite plus the `mmcv.ops` stand-in
of `preprocess.mmcv_shim`). No weights ship with OpenMMLab and nothing is downloaded: `checkpoint` is a
local file, or None for a randomly initialised model (tests only; `params` then says "random-init").

MMPose, per call:
  1. person boxes per frame (xyxy, frame pixels): an mmdet detector (person class, score >= 0.5), else
     `box_source(frame)`, else the whole frame;
  2. each box is cropped exactly as mmpose's test pipeline does (GetBBoxCenterScale padding, aspect ratio
     fixed to the model input, `get_warp_matrix` / `get_udp_warp_matrix`), normalised with the model's
     data_preprocessor mean/std; all crops of the call go through `extract_feat` + `head.forward` in
     batches of `batch_size` (no flip test);
  3. each (17, h', w') heatmap is mapped back into the output map (short side of the frame scaled to the
     output size) by the inverse of crop affine composed with the codec's input->heatmap scale
     (`heatmap_to_frame`), with cv2.warpAffine; outside the crop is 0;
  4. normalisation rule: values are clipped to [0, 1] (mmpose's MSRA/UDP heatmap targets are Gaussians
     peaked at 1, so a trained model's output is already in that range; a random model's is not and is
     simply clipped);
  5. people are combined per keypoint by max, or by a score-weighted sum clipped to 1 (`combine="sum"`;
     the person score is the detector's score, 1 for box_source / whole-frame boxes) -> `to_uint8`.

MMSeg: frames are resized (keeping aspect ratio) to the config's test Resize scale, normalised, padded to
a multiple of 32, run through `extract_feat` + `decode_head.forward` ("whole" inference, also for configs
whose test mode is "slide"), logits upsampled to the padded input, cropped, softmaxed; the person-class
probability is resized (INTER_AREA) to the output size -> uint8 (N, h, w, 1).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .errors import UserError
from .heatmaps import COCO17, COMBINE, to_uint8

INSTALL_HINT = "bash scripts/install_openmmlab.sh .venv"
DET_SCORE_THRESHOLD = 0.5
BoxSource = Callable[[np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------------------------- helpers

def _import(package: str) -> Any:
    """Import mmpose / mmseg / mmdet (with the mmcv.ops stand-in first) or raise a one-line UserError."""
    from .mmcv_shim import install_shim
    try:
        install_shim()
        import importlib
        module = importlib.import_module(package)
        importlib.import_module(f"{package}.apis")
        return module
    except ImportError as exc:
        raise UserError(f"the OpenMMLab backends need {package} ({type(exc).__name__}: {exc}); install the "
                        f"stack with: {INSTALL_HINT}") from None


def own_scope(name: str) -> Any:
    """A context in which OpenMMLab's default registry scope is `name`, restored afterwards: each backend
    builds and runs under its own scope, whatever another backend of the same run set globally (mmseg's
    scope left behind made mmdet build its pipeline from mmseg's LoadAnnotations)."""
    from mmengine.registry import DefaultScope
    return DefaultScope.overwrite_default_scope(name)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _sha16(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _resolve_config(config: str | os.PathLike, package: str, option: str) -> Path:
    path = Path(config).expanduser()
    if path.is_file():
        return path.resolve()
    mod = _import(package)
    shipped = Path(mod.__file__).parent / ".mim" / "configs" / str(config)
    if shipped.is_file():
        return shipped
    raise UserError(f"{option}: config {config} not found (neither a file nor a config shipped in "
                    f"{package}'s .mim/configs)")


def _load_config(config: str | os.PathLike, package: str, option: str) -> tuple[Any, Path]:
    path = _resolve_config(config, package, option)
    from mmengine.config import Config
    try:
        return Config.fromfile(str(path)), path
    except Exception as exc:                         # SyntaxError, missing _base_, bad key, ...
        raise UserError(f"{option}: cannot read config {path}: {type(exc).__name__}: {_one_line(exc)}") from None


def _device(device: str) -> str:
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device} requested but CUDA is not available")
    return device


def _strip_init_cfg(node: Any) -> None:
    """Set every `init_cfg` / `pretrained` in the model config to None: nothing is downloaded."""
    if isinstance(node, dict):
        for key in list(node.keys()):
            if key in ("init_cfg", "pretrained"):
                node[key] = None
            else:
                _strip_init_cfg(node[key])
    elif isinstance(node, (list, tuple)):
        for item in node:
            _strip_init_cfg(item)


def _raise_score_thresholds(node: Any, minimum: float) -> None:
    """Lift every `score_thr` of a detector's test_cfg to at least `minimum`. Exact for the boxes kept here
    (score >= minimum): a box is only suppressed by higher-scored ones, which pass the threshold too; and
    NMS then sees a few boxes instead of thousands."""
    if isinstance(node, dict):
        for key in list(node.keys()):
            if key == "score_thr" and isinstance(node[key], (int, float)):
                node[key] = max(float(node[key]), minimum)
            else:
                _raise_score_thresholds(node[key], minimum)


def load_state(model: Any, checkpoint: str | os.PathLike | None, option: str) -> tuple[str, dict]:
    """Load a local checkpoint into `model` strictly; returns (sha256[:16] or "random-init", its meta).

    A missing file, an unreadable file or a state dict that does not match the model (first missing /
    unexpected / wrongly shaped key) raises a one-line UserError.
    """
    if checkpoint is None:
        return "random-init", {}
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise UserError(f"{option}: checkpoint {checkpoint} not found")
    from mmengine.runner.checkpoint import _load_checkpoint
    previous = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"    # mmengine runners pickle numpy arrays in meta
    try:
        ckpt = _load_checkpoint(str(path), map_location="cpu")
    except Exception as exc:
        raise UserError(f"{option}: cannot load checkpoint {path}: {type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = previous
    if not isinstance(ckpt, dict):
        raise UserError(f"{option}: checkpoint {path} is not a state dict")
    state = ckpt.get("state_dict", ckpt)
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    own = model.state_dict()
    for key, value in own.items():
        if key not in state:
            raise UserError(f"{option}: checkpoint {path} does not match its config: key {key} missing")
        if tuple(state[key].shape) != tuple(value.shape):
            raise UserError(f"{option}: checkpoint {path} does not match its config: key {key} has shape "
                            f"{tuple(state[key].shape)}, the model expects {tuple(value.shape)}")
    for key in state:
        if key not in own:
            raise UserError(f"{option}: checkpoint {path} does not match its config: unexpected key {key}")
    model.load_state_dict(state, strict=True)
    meta = ckpt.get("meta", {}) if isinstance(ckpt.get("meta", {}), dict) else {}
    return _sha16(path), meta


def _build_loaded(init: Any, cfg: Any, cfg_path: Path, checkpoint: str | os.PathLike | None, option: str,
                  what: str, device: str) -> tuple[Any, str, dict]:
    """Build a model from its config with mm's `init`, load a local checkpoint, move it, eval mode."""
    try:
        model = init(cfg, checkpoint=None, device="cpu")
    except Exception as exc:
        raise UserError(f"{option}-config {cfg_path}: cannot build {what}: {type(exc).__name__}: "
                        f"{_one_line(exc)}") from None
    digest, meta = load_state(model, checkpoint, f"{option}-checkpoint")
    return model.to(device).eval(), digest, meta


def _preproc_stats(cfg_pre: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """mean, std (model channel order) and whether the model wants RGB (frames here are RGB)."""
    mean = np.asarray(cfg_pre.get("mean", (0.0, 0.0, 0.0)), np.float32)
    std = np.asarray(cfg_pre.get("std", (1.0, 1.0, 1.0)), np.float32)
    # OpenMMLab loads BGR images; bgr_to_rgb=True means the network works in RGB (our frames' order);
    # otherwise (nothing, or rgb_to_bgr) it works in BGR.
    wants_rgb = bool(cfg_pre.get("bgr_to_rgb", False))
    return mean, std, wants_rgb


# ------------------------------------------------------------------------------------------ geometry

def output_transform(frame_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """2x3 affine: frame pixel (x, y) -> output-map pixel, with pixel centres at integer coordinates."""
    fh, fw = frame_size
    h, w = size
    sx, sy = w / fw, h / fh
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]], np.float64)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x3 affines: (a o b)(p) = a(b(p))."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def heatmap_to_frame(heatmaps: np.ndarray, crop_warp: np.ndarray, heatmap_scale: tuple[float, float],
                     frame_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Map (K, h', w') heatmaps of one crop back to the (h, w, K) output map of the frame.

    crop_warp: the 2x3 affine frame pixel -> model-input pixel used to cut the crop; heatmap_scale: the
    codec's (sx, sy) model-input pixel -> heatmap pixel factors (heatmap/input, or (heatmap-1)/(input-1)
    for UDP). Outside the crop the map is 0.
    """
    h, w = size
    to_heat = _compose(np.array([[heatmap_scale[0], 0, 0], [0, heatmap_scale[1], 0]], np.float64), crop_warp)
    out_to_frame = cv2.invertAffineTransform(output_transform(frame_size, size))
    out_to_heat = _compose(to_heat, out_to_frame)        # output pixel -> heatmap pixel (dst -> src)
    src = np.ascontiguousarray(np.asarray(heatmaps, np.float32).transpose(1, 2, 0))
    chans = []
    for start in range(0, src.shape[2], 4):              # cv2.warpAffine: at most 4 channels at a time
        part = cv2.warpAffine(src[:, :, start:start + 4], out_to_heat, (w, h),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        chans.append(part.reshape(h, w, -1))
    return np.concatenate(chans, axis=2)


# ----------------------------------------------------------------------------------------------- MMPose

class MMPose:
    """mmpose 1.x top-down heatmap model: COCO-17 heatmaps of every person, mapped back into the frame."""

    def __init__(self, config: str, checkpoint: str | None, det_config: str | None = None,
                 det_checkpoint: str | None = None, sigma: float = 2.0, combine: str = "max",
                 device: str = "auto", batch_size: int = 16, box_source: BoxSource | None = None) -> None:
        if combine not in COMBINE:
            raise UserError(f"--pose-combine must be one of {', '.join(COMBINE)}")
        if not sigma > 0:
            raise UserError(f"--pose-sigma must be positive, got {sigma}")
        if batch_size < 1:
            raise UserError(f"the pose batch size must be at least 1, got {batch_size}")
        _import("mmpose")
        import torch
        from mmpose.apis import init_model
        from mmpose.structures.bbox import get_udp_warp_matrix, get_warp_matrix

        self.combine, self.sigma, self.batch_size = combine, float(sigma), int(batch_size)
        self.device = _device(device)
        self.box_source = box_source
        cfg, cfg_path = _load_config(config, "mmpose", "--pose-config")
        _strip_init_cfg(cfg.model)
        try:
            if cfg.model.get("test_cfg") is None:
                cfg.model.test_cfg = {}
            cfg.model.test_cfg.output_heatmaps = True
            model_type = cfg.model.type
            head = cfg.model.head
            codec = head.get("decoder") or cfg.get("codec")
            if model_type != "TopdownPoseEstimator" or codec is None or "Heatmap" not in codec["type"]:
                raise UserError(f"--pose-config {cfg_path}: not a top-down heatmap model (model {model_type}, "
                                f"codec {None if codec is None else codec['type']})")
            self.input_size = tuple(int(v) for v in codec["input_size"])           # (w, h)
            self.heatmap_size = tuple(int(v) for v in codec["heatmap_size"])       # (w, h)
            self.udp = codec["type"] == "UDPHeatmap"
            pipeline = list(cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline", []) or [])
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"--pose-config {cfg_path}: unusable config: {type(exc).__name__}: {_one_line(exc)}") from None
        self.padding = 1.25
        for step in pipeline:
            if step.get("type") == "GetBBoxCenterScale":
                self.padding = float(step.get("padding", 1.25))
            if step.get("type") == "TopdownAffine":
                self.udp = bool(step.get("use_udp", self.udp))
        if self.udp:
            self.heatmap_scale = tuple((hs - 1) / (i - 1) for hs, i in zip(self.heatmap_size, self.input_size))
        else:
            self.heatmap_scale = tuple(hs / i for hs, i in zip(self.heatmap_size, self.input_size))
        self._warp_fn = get_udp_warp_matrix if self.udp else get_warp_matrix
        with own_scope("mmpose"):
            self.model, digest, _ = _build_loaded(init_model, cfg, cfg_path, checkpoint, "--pose", "the model",
                                                  self.device)
        self.mean, self.std, self.wants_rgb = _preproc_stats(cfg.model.get("data_preprocessor", {}) or {})
        self._torch = torch

        self.detector = None
        det_desc: Any = "box source" if box_source is not None else "whole frame"
        if det_config is not None:
            det_desc = self._build_detector(det_config, det_checkpoint)
        self.params = {
            "backend": "mmpose", "config": str(cfg_path), "model_type": model_type,
            "codec": codec["type"], "input_size_wh": list(self.input_size),
            "heatmap_size_wh": list(self.heatmap_size), "keypoints": "COCO-17",
            "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
            "checkpoint_sha256_16": digest,
            "weights": "random-init (tests only)" if checkpoint is None else "checkpoint",
            "person_boxes": det_desc, "bbox_padding": self.padding, "flip_test": False,
            "normalisation": "model heatmap clipped to [0, 1]", "combine": combine,
            "device": self.device,
        }

    # -- detection
    def _build_detector(self, det_config: str, det_checkpoint: str | None) -> dict:
        _import("mmdet")
        from mmdet.apis import init_detector
        cfg, path = _load_config(det_config, "mmdet", "--det-config")
        _strip_init_cfg(cfg.model)
        _raise_score_thresholds(cfg.model.get("test_cfg"), DET_SCORE_THRESHOLD)
        with own_scope("mmdet"):
            self.detector, digest, meta = _build_loaded(init_detector, cfg, path, det_checkpoint, "--det",
                                                        "the detector", self.device)
        classes = (meta.get("dataset_meta") or {}).get("classes") or meta.get("CLASSES") or \
            (getattr(self.detector, "dataset_meta", None) or {}).get("classes") or ()
        lowered = [str(c).lower() for c in classes]
        self.det_person = lowered.index("person") if "person" in lowered else 0
        return {"config": str(path), "checkpoint_sha256_16": digest, "person_class": self.det_person,
                "score_threshold": DET_SCORE_THRESHOLD}

    def boxes(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, 4) xyxy person boxes in frame pixels and (P,) scores."""
        fh, fw = frame.shape[:2]
        if self.detector is not None:
            from mmdet.apis import inference_detector
            try:
                with own_scope("mmdet"):  # its test pipeline is built from the registry of the current scope
                    result = inference_detector(self.detector, np.ascontiguousarray(frame[:, :, ::-1]))
            except NotImplementedError as exc:
                raise UserError(f"the detector needs compiled mmcv ops ({_one_line(exc)})") from None
            inst = result.pred_instances
            keep = (inst.labels == self.det_person) & (inst.scores >= DET_SCORE_THRESHOLD)
            return (inst.bboxes[keep].cpu().numpy().astype(np.float32),
                    inst.scores[keep].cpu().numpy().astype(np.float32))
        if self.box_source is not None:
            b = np.asarray(self.box_source(frame), np.float32).reshape(-1, 4)
            return b, np.ones(len(b), np.float32)
        return np.array([[0, 0, fw, fh]], np.float32), np.ones(1, np.float32)

    # -- crops
    def crop_warp(self, box: np.ndarray) -> np.ndarray:
        """2x3 affine frame pixel -> model-input pixel for an xyxy box (mmpose's top-down rule)."""
        x1, y1, x2, y2 = [float(v) for v in box]
        center = np.array([(x1 + x2) / 2, (y1 + y2) / 2], np.float32)
        bw, bh = (x2 - x1) * self.padding, (y2 - y1) * self.padding
        w, h = self.input_size
        aspect = w / h
        scale = np.array([bw, bw / aspect] if bw > bh * aspect else [bh * aspect, bh], np.float32)
        return np.asarray(self._warp_fn(center, scale, 0.0, output_size=(w, h)), np.float64)

    def reset(self) -> None:
        return None

    def _heatmaps(self, crops: list[np.ndarray]) -> np.ndarray:
        """Batched (n, K, h', w') float32 heatmaps of model-input-sized RGB crops."""
        torch = self._torch
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = np.stack(crops[start:start + self.batch_size]).astype(np.float32)
            if not self.wants_rgb:
                batch = batch[..., ::-1]
            batch = (batch - self.mean) / self.std
            x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).to(self.device)
            with torch.no_grad():
                heat = self.model.head.forward(self.model.extract_feat(x))
            if isinstance(heat, (tuple, list)):
                heat = heat[0]
            out.append(heat.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(COCO17)) + self.heatmap_size[::-1], np.float32)

    def __call__(self, frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        h, w = size
        w_in, h_in = self.input_size
        crops, owners, warps, scores = [], [], [], []
        for i, frame in enumerate(frames):
            boxes, sc = self.boxes(frame)
            for box, s in zip(boxes, sc):
                if not (box[2] > box[0] and box[3] > box[1]):
                    continue
                m = self.crop_warp(box)
                crops.append(cv2.warpAffine(frame, m, (w_in, h_in), flags=cv2.INTER_LINEAR))
                owners.append(i), warps.append(m), scores.append(float(s))
        heat = self._heatmaps(crops)
        maps = np.zeros((len(frames), h, w, len(COCO17)), np.float32)
        for hm, i, m, s in zip(heat, owners, warps, scores):
            person = np.clip(heatmap_to_frame(hm[:len(COCO17)], m, self.heatmap_scale, frames[i].shape[:2],
                                              size), 0.0, 1.0)
            if self.combine == "max":
                np.maximum(maps[i], person, out=maps[i])
            else:
                maps[i] += s * person
        return to_uint8(maps)


# ------------------------------------------------------------------------------------------------ MMSeg

class MMSeg:
    """mmsegmentation 1.x model: softmax probability of the person class, per output pixel."""

    def __init__(self, config: str, checkpoint: str | None, person_class: int | None = None,
                 device: str = "auto", batch_size: int = 8) -> None:
        if batch_size < 1:
            raise UserError(f"the segmentation batch size must be at least 1, got {batch_size}")
        _import("mmseg")
        import torch
        from mmseg.registry import MODELS

        self.batch_size, self.device = int(batch_size), _device(device)
        cfg, cfg_path = _load_config(config, "mmseg", "--seg-config")
        _strip_init_cfg(cfg.model)
        model_type = cfg.model.get("type")

        def build(c: Any, checkpoint: None = None, device: str = "cpu") -> Any:
            with own_scope("mmseg"):
                return MODELS.build(c.model)

        self.model, digest, meta = _build_loaded(build, cfg, cfg_path, checkpoint, "--seg", "the model", self.device)
        self.mean, self.std, self.wants_rgb = _preproc_stats(cfg.model.get("data_preprocessor", {}) or {})
        self.scale = self._test_scale(cfg)
        self.align_corners = bool(getattr(self.model.decode_head, "align_corners", False))
        self.num_classes = int(self.model.decode_head.num_classes)
        self._torch = torch

        classes = (meta.get("dataset_meta") or {}).get("classes") or meta.get("CLASSES")
        if classes is None:
            try:                                      # the config's dataset, when it matches the head
                from mmseg.registry import DATASETS
                ds_cls = DATASETS.get(cfg.test_dataloader.dataset.type)
                ds_classes = ds_cls.METAINFO.get("classes")
                if ds_classes is not None and len(ds_classes) == self.num_classes:
                    classes = ds_classes
            except Exception:
                classes = None
        self.model.dataset_meta = {"classes": tuple(classes) if classes is not None else None}
        lowered = [str(c).lower() for c in classes] if classes is not None else []
        if "person" in lowered:
            self.person_class, source = lowered.index("person"), "dataset_meta classes"
        elif person_class is not None:
            self.person_class, source = int(person_class), "--seg-person-class"
        else:
            raise UserError(f"--seg-config {cfg_path}: no 'person' class in the model's classes "
                            f"({'none known' if classes is None else len(classes)}); pass --seg-person-class")
        if not 0 <= self.person_class < self.num_classes:
            raise UserError(f"--seg-person-class {self.person_class} is outside the model's "
                            f"{self.num_classes} classes")
        self.params = {
            "backend": "mmseg", "config": str(cfg_path), "model_type": model_type,
            "decode_head": cfg.model.decode_head.get("type") if hasattr(cfg.model, "decode_head") else None,
            "num_classes": self.num_classes, "person_class": self.person_class, "person_class_from": source,
            "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
            "checkpoint_sha256_16": digest,
            "weights": "random-init (tests only)" if checkpoint is None else "checkpoint",
            "test_scale": list(self.scale), "inference": "whole image, no flip",
            "value": "softmax P(person) x 255", "device": self.device,
        }

    @staticmethod
    def _test_scale(cfg: Any) -> tuple[int, int]:
        try:
            for step in cfg.test_dataloader.dataset.pipeline:
                if step.get("type") == "Resize" and step.get("scale") is not None:
                    return tuple(int(v) for v in step["scale"])
        except Exception:
            pass
        return (2048, 512)

    def reset(self) -> None:
        return None

    def _input(self, frame: np.ndarray) -> np.ndarray:
        fh, fw = frame.shape[:2]
        long_s, short_s = max(self.scale), min(self.scale)
        f = min(long_s / max(fh, fw), short_s / min(fh, fw))        # mmcv keep-ratio rescale
        nw, nh = int(fw * f + 0.5), int(fh * f + 0.5)
        img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if not self.wants_rgb:
            img = img[..., ::-1]
        return (img - self.mean) / self.std

    def __call__(self, frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        torch = self._torch
        import torch.nn.functional as F
        h, w = size
        out = np.zeros((len(frames), h, w, 1), np.uint8)
        for start in range(0, len(frames), self.batch_size):
            imgs = [self._input(f) for f in frames[start:start + self.batch_size]]
            ph = int(math.ceil(max(i.shape[0] for i in imgs) / 32) * 32)
            pw = int(math.ceil(max(i.shape[1] for i in imgs) / 32) * 32)
            batch = np.zeros((len(imgs), ph, pw, 3), np.float32)
            for k, img in enumerate(imgs):
                batch[k, :img.shape[0], :img.shape[1]] = img
            x = torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()).to(self.device)
            with torch.no_grad():
                logits = self.model.decode_head.forward(self.model.extract_feat(x))
                logits = F.interpolate(logits, size=(ph, pw), mode="bilinear", align_corners=self.align_corners)
            for k, img in enumerate(imgs):
                valid = logits[k:k + 1, :, :img.shape[0], :img.shape[1]]
                prob = torch.softmax(valid.float(), dim=1)[0, self.person_class].cpu().numpy()
                small = cv2.resize(prob, (w, h), interpolation=cv2.INTER_AREA)
                out[start + k, :, :, 0] = to_uint8(small)
        return out
