"""The training loader users run today (DPC / MemDPC style), for `bench_train_data.py` to compare against.

Frames live as one JPEG per source frame: `frames/<video>/image_%05d.jpg` (RGB, q80, DPC
`extract_frame.py`) and `<flow view>/<video>/flow_%05d.jpg` (MemDPC-style 3-channel flow JPEG, q100,
third channel 128). The loader opens each frame of the clip with PIL, `Image.open(f).convert('RGB')`
(DPC's `pil_loader`), keeps two channels for flow, and then does exactly what ours does after reading:
the same window (N blocks of K frames at the training stride), the same integer crop and flip, uint8
tensors out: it is `MultiViewClips` with only the frame reading replaced. `write_jpeg_folders` makes
these folders from a store's own frames, so both loaders read the same content (up to JPEG loss), with
file names numbered by source frame as the extractors do.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from PIL import Image

from preprocess.store import Store
from train.data.dataset import MultiViewClips, ViewCut

RGB_JPEG_QUALITY = 80     # DPC extract_frame.py
FLOW_JPEG_QUALITY = 100   # MemDPC extract_ff.py
FLOW_THIRD_CHANNEL = 128


def folder_name(video_id: str) -> str:
    """A video id as one folder name."""
    return quote(video_id, safe="")


def frame_path(folder: Path, view: str, kind: str, video_id: str, source_index: int) -> Path:
    """The JPEG of a source frame (0-based index; files are numbered from 1, as the extractors do)."""
    if kind == "flow":
        return folder / view / folder_name(video_id) / f"flow_{source_index + 1:05d}.jpg"
    return folder / "frames" / folder_name(video_id) / f"image_{source_index + 1:05d}.jpg"


def write_jpeg_folders(store_root: Path, out: Path, views: list[str]) -> dict[str, int]:
    """Write every stored frame of `views` as the baseline's JPEG files under `out`; return files per view."""
    store = Store(store_root)
    counts = dict.fromkeys(views, 0)
    try:
        for view in views:
            kind = store.view_meta[view]["kind"]
            for vid in store.video_ids(view):
                frames, sources = store.read(vid, view), store.frame_indices(vid, view)
                if not np.array_equal(sources, store.manifest.stride * np.arange(len(sources))):
                    raise ValueError(f"{vid}: stored frames are not every {store.manifest.stride}th source frame")
                for img, src in zip(frames, sources):
                    path = frame_path(out, view, kind, vid, int(src))
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if kind == "flow":  # PIL reads this file back as (u, v, 128)
                        third = np.full(img.shape[:2], FLOW_THIRD_CHANNEL, np.uint8)
                        bgr = np.dstack([third, img[..., 1], img[..., 0]])
                        cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, FLOW_JPEG_QUALITY])
                    else:
                        cv2.imwrite(str(path), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, RGB_JPEG_QUALITY])
                    counts[view] += 1
    finally:
        store.close()
    return counts


def pil_loader(path: Path) -> np.ndarray:
    """One frame as uint8 RGB (H, W, 3), the way DPC's `pil_loader` reads it."""
    with open(path, "rb") as fh:
        with Image.open(fh) as img:
            return np.asarray(img.convert("RGB"))


class JpegClips(MultiViewClips):
    """DPC-style clips from per-frame JPEG files, with the windows, crops, flips and seeding of `MultiViewClips`.

    The store is read for its metadata only (videos, labels, frame counts, views); every frame comes from
    `folder` (made by `write_jpeg_folders`), source frame = stride · stored frame, one PIL open per frame.
    """

    def __init__(self, folder: str | Path, store_root: str | Path, views: list[str], **kwargs: Any) -> None:
        super().__init__(store_root, views, **kwargs)
        self.folder = Path(folder)
        self.stride = int(self.store.manifest.stride)

    def read_frames(self, video_id: str, cut: ViewCut, idx: np.ndarray, top: int, left: int,
                    out: np.ndarray | None = None) -> tuple[np.ndarray, None]:
        """(T, c, c, C) uint8 from one JPEG per frame of the window, each decoded whole (as DPC's loader does)
        and cropped to the c×c square at (top, left) as a view; flow keeps its first two channels (u, v).
        `out` is not used: the caller copies the crop into its batch, as a DataLoader's collate does."""
        clip = np.stack([pil_loader(frame_path(self.folder, cut.name, cut.kind, video_id, self.stride * int(t)))
                         for t in idx])
        crop = clip[:, top:top + cut.side, left:left + cut.side]
        return (crop[..., :2] if cut.kind == "flow" else crop), None
