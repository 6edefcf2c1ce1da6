"""Every real clip in ../shared/data/real_clips preprocesses with every view (skipped when absent)."""

from __future__ import annotations

import shutil

import numpy as np

from data_specs.views import VIEWS
from preprocess.store import Store
from tests.conftest import FAST_TVL1, run_cli


def test_every_real_clip_with_every_view(real_clips, tmp_path, capsys):
    clips = sorted(p for p in real_clips.iterdir() if p.suffix.lower() in (".avi", ".mp4", ".gif"))
    assert len(clips) >= 10
    videos = tmp_path / "videos"
    videos.mkdir()
    for p in clips:                      # links, not copies: the clips stay in ../shared
        (videos / p.name).symlink_to(p)
    views = ",".join(VIEWS)
    rc = run_cli("run", "--videos", videos, "--out", tmp_path / "store", "--views", views, "--tvl1", FAST_TVL1,
                 "--jobs", "2", "--no-progress")
    assert rc == 0, capsys.readouterr().err
    assert run_cli("verify", tmp_path / "store") == 0
    store = Store(tmp_path / "store")
    for p in clips:
        vid = p.stem
        indices = store.frame_indices(vid, "rgb")
        assert len(indices) >= 15 and indices[0] == 0 and np.all(np.diff(indices) == 3)
        rgb = store.read(vid, "rgb", 0, 1)[0]
        assert min(rgb.shape[:2]) == 128 and rgb.std() > 5          # a real picture, not a blank
        for view in VIEWS:
            if VIEWS[view].kind == "flow":
                flow = store.read(vid, view, pixels=True)
                assert flow.shape[:3] == (len(indices),) + rgb.shape[:2]
                assert np.abs(flow).mean() > 0.02, f"{vid} {view}: no motion found at all"
    shutil.rmtree(tmp_path / "store")
