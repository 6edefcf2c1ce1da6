"""Shared fixtures: synthetic videos encoded on the fly, the real clips (when present), a CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_CLIPS = Path(os.environ.get("COCON_REAL_CLIPS", ROOT.parent / "shared" / "data" / "real_clips"))
# Fast TV-L1 settings for tests that only need "a TV-L1 flow", not its accuracy (OpenCV's defaults
# cost ~0.4 s per frame pair here); accuracy tests use the defaults.
FAST_TVL1 = "nscales=3,warps=2,inner_iterations=10,outer_iterations=2"


def run_cli(*argv: str) -> int:
    """Run `python -m preprocess ARGV` in this process and return its exit status."""
    from preprocess.cli import main
    return main([str(a) for a in argv])


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in sample: 3 classes x 2 synthetic videos of 64 frames, 160x120, known motion."""
    from preprocess.synthetic import write_sample
    out = tmp_path_factory.mktemp("sample") / "videos"
    write_sample(out, num_frames=40, per_class=2)
    return out


@pytest.fixture(scope="session")
def real_clips() -> Path:
    if not REAL_CLIPS.is_dir():
        pytest.skip(f"real clips folder {REAL_CLIPS} is absent")
    return REAL_CLIPS


def python_cmd() -> list[str]:
    return [sys.executable, "-m", "preprocess"]


def assert_same_content(a: Path, b: Path) -> None:
    """Two stores hold the same videos, frames, indices and per-video attributes in every view."""
    from preprocess.store import Store
    sa, sb = Store(a), Store(b)
    assert sa.views == sb.views
    for view in sa.views:
        ids = sa.video_ids(view)
        assert ids == sb.video_ids(view)
        for vid in ids:
            np.testing.assert_array_equal(sa.read(vid, view), sb.read(vid, view))
            np.testing.assert_array_equal(sa.frame_indices(vid, view), sb.frame_indices(vid, view))
            np.testing.assert_array_equal(sa.times(vid, view), sb.times(vid, view))
            attrs_a, attrs_b = sa.video_attrs(vid, view), sb.video_attrs(vid, view)
            assert attrs_a.keys() == attrs_b.keys()
            for k in attrs_a:
                np.testing.assert_array_equal(attrs_a[k], attrs_b[k])
