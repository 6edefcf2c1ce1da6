"""Save PNG examples of every view next to the README (docs/views_*.png): for a few stored frames of real
clips, the RGB frame, TV-L1 flow (colour = direction, brightness = speed), the 17 pose heatmaps summed,
and the person mask.

    .venv/bin/python bench/make_view_examples.py [--clips /work/shared/data/real_clips] [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from preprocess.cli import main as preprocess_main  # noqa: E402
from preprocess.store import Store  # noqa: E402

CLIPS = ("soccer_juggling__ucf101-via-torchvision-assets__1.avi", "clean_and_jerk__k400-via-mmskeleton__1.mp4",
         "segwaying__k400-via-torchvision-assets__1.mp4")


def flow_to_colour(flow: np.ndarray, max_px: float = 6.0) -> np.ndarray:
    """Flow (H, W, 2) in pixels -> RGB: hue = direction, value = speed (saturating at max_px)."""
    mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    hsv = np.zeros(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (ang / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / max_px * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def grey_to_rgb(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A [0, 1] map -> an RGB heat image (inferno-like via OpenCV's colormap) at `size` (w, h)."""
    img = cv2.applyColorMap(np.clip(x * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_NEAREST)


def panel(store: Store, vid: str, t: int) -> np.ndarray:
    rgb = store.read(vid, "rgb", t, t + 1)[0]
    h, w = rgb.shape[:2]
    flow = flow_to_colour(store.read(vid, "flow_tvl1", t, t + 1, pixels=True)[0])
    pose = store.read(vid, "pose", t, t + 1)[0].astype(np.float32).sum(-1) / 255
    seg = store.read(vid, "seg", t, t + 1)[0, ..., 0].astype(np.float32) / 255
    return np.concatenate([rgb, flow, grey_to_rgb(np.clip(pose, 0, 1), (w, h)), grey_to_rgb(seg, (w, h))], axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", default=str(ROOT.parent / "shared" / "data" / "real_clips"))
    p.add_argument("--out", default=str(ROOT / "docs"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="view-examples-"))
    (work / "v").mkdir()
    for name in CLIPS:
        (work / "v" / name).symlink_to(Path(args.clips) / name)
    assert preprocess_main(["run", "--videos", str(work / "v"), "--out", str(work / "s"),
                            "--views", "rgb,flow_tvl1,pose,seg", "--no-progress"]) == 0
    store = Store(work / "s")
    rows = []
    for name in CLIPS:
        vid = Path(name).stem
        n = store.num_frames(vid, "rgb")
        rows.append(panel(store, vid, n // 2))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    out = Path(args.out) / "views.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    print(f"wrote {out}: per row RGB | TV-L1 flow | pose heatmaps summed | person mask")


if __name__ == "__main__":
    main()
