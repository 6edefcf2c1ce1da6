"""Flow views measured against known motion, end to end: synthetic video -> PyAV encode -> pipeline
-> uint8 store -> pixels. Mean endpoint error over the interior, after quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.store import Store
from preprocess.synthetic import affine_step, encode_video, moving_frames, textured_image, true_flow
from tests.conftest import run_cli

H, W = 128, 160          # already at the stored size (short side 128): no resize blurs the truth
MARGIN = 16              # borders have no valid correspondence (content enters and leaves)
LIMITS = {"flow_tvl1": 0.3, "flow_farneback": 0.6, "flow_dis": 0.6}

MOTIONS = {
    "translation": affine_step(dx=1.37, dy=-0.62),
    "rotation": affine_step(angle_deg=1.2, center=(W / 2, H / 2)),
    "zoom": affine_step(scale=1.015, center=(W / 2, H / 2)),
}


def _epe_per_view(tmp_path, motion: str) -> dict[str, float]:
    step = MOTIONS[motion]
    texture = textured_image(2 * H, 2 * W, seed=3, blur=1.5)
    frames = moving_frames(texture, (H, W), 14, step, offset=(H // 2, W // 2))
    encode_video(tmp_path / "videos" / f"{motion}.mp4", frames, crf=8)
    assert run_cli("run", "--videos", tmp_path / "videos", "--out", tmp_path / "store", "--no-progress",
                   "--views", ",".join(LIMITS)) == 0
    store = Store(tmp_path / "store")
    truth = true_flow(step, (H, W))[MARGIN:-MARGIN, MARGIN:-MARGIN]
    out = {}
    for view in LIMITS:
        flow = store.read(motion, view, pixels=True)
        assert flow.shape == (5, H, W, 2)  # frames 0, 3, 6, 9, 12 (13 has a successor, but 13 % 3 != 0)
        err = np.linalg.norm(flow[:, MARGIN:-MARGIN, MARGIN:-MARGIN] - truth, axis=-1)
        out[view] = float(err.mean())
    return out


@pytest.mark.parametrize("motion", sorted(MOTIONS))
def test_flow_matches_known_motion(tmp_path, motion):
    epe = _epe_per_view(tmp_path, motion)
    print(motion, {k: round(v, 3) for k, v in epe.items()})
    for view, limit in LIMITS.items():
        assert epe[view] < limit, f"{motion}: {view} mean EPE {epe[view]:.3f} px >= {limit}"


def test_zero_motion_is_zero_flow(tmp_path):
    frames = [textured_image(H, W, seed=5)] * 8
    encode_video(tmp_path / "v" / "still.mp4", frames, crf=8)
    assert run_cli("run", "--videos", tmp_path / "v", "--out", tmp_path / "s", "--no-progress",
                   "--views", "flow_farneback,flow_dis") == 0
    store = Store(tmp_path / "s")
    for view in ("flow_farneback", "flow_dis"):
        q = store.read("still", view)
        # 0 px quantises to 128 (127.5 rounded half to even); a still video stays within one step of it
        assert np.abs(q.astype(int) - 128).max() <= 1
