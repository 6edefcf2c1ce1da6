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


def kill_after_first_epoch(cmd: list[str], metrics: Path, env: dict[str, str]) -> int:
    """Start a training command, SIGKILL its process group once `metrics` holds an epoch's line, and return
    the last epoch that line records (the kill-then-resume tests of every training command)."""
    import json
    import signal
    import subprocess
    import time
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return json.loads(metrics.read_text().splitlines()[-1])["epoch"]


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
def motion_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled store for evaluation tests: 3 motion classes x 4 videos (rgb, Farneback flow, short side 64)."""
    from tests.helpers.motion_classes import write_motion_classes
    base = tmp_path_factory.mktemp("motion")
    write_motion_classes(base / "videos")
    root = base / "store"
    assert run_cli("run", "--videos", base / "videos", "--out", root, "--views", "rgb,flow_farneback",
                   "--size", "64", "--no-progress") == 0
    return root


@pytest.fixture(scope="session")
def motion_checkpoint(motion_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CoCon checkpoint (rgb + Farneback flow, width 1/8, 1 + 1 epochs) pre-trained on `motion_store`."""
    from train.cocon import main as train_main
    out = tmp_path_factory.mktemp("motion_run")
    rc = train_main(["--config", str(ROOT / "configs" / "cocon_r18w0.125-64_1x3_3+3e_sample-rgb-flow.yaml"),
                     f"data.root={motion_store}", f"out={out}", "data.views=[rgb, flow_farneback]", *TINY_PRETRAIN])
    assert rc == 0
    return out / "sample" / "cocon" / "checkpoint.pth"


# The tiny-run overrides every training test starts from (pre-training, fine-tuning, evaluation): width 1/8
# (feature dim 32), no data workers, no progress bars; TINY_MOTION adds what fits the motion store: 4 blocks of
# 3 stored frames (its videos hold 13) at 32 px.
TINY = ["model.width=0.125", "data.workers=0", "progress=false"]
TINY_MOTION = [*TINY, "data.num_blocks=4", "data.block_frames=3", "model.sizes={rgb: 32, flow_farneback: 32}"]
# A tiny pre-training run on `motion_store`: one epoch per stage.
TINY_PRETRAIN = [*TINY_MOTION, "model.pred_steps=2", "data.batch_size=3", "data.repeats=1", "schedule.cpc_epochs=1",
                 "schedule.cocon_epochs=1"]


# The CoCon training tests' runs (tests/test_train_cocon.py, tests/test_train_errors.py): the sample config on
# `cocon_store` at 32 px, batch 2, TensorBoard scalars every step, no plateau schedule.
TINY_COCON = [*TINY, "data.repeats=1", "model.sizes={rgb: 32, flow_dis: 32}", "data.batch_size=2", "log_every=1",
              "optim.plateau_patience=100"]


def cocon_args(store: Path, out: Path, *extra: str) -> list[str]:
    """`train.cocon` arguments: a tiny run of the sample config (rgb + DIS flow) on `store` into `out`, then `extra`."""
    return ["--config", str(ROOT / "configs" / "cocon_r18w0.125-64_1x3_3+3e_sample-rgb-flow.yaml"),
            f"data.root={store}", f"out={out}", "data.views=[rgb, flow_dis]", *TINY_COCON, *extra]


@pytest.fixture(scope="session")
def cocon_store(sample_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's rgb + DIS flow store the CoCon training tests read (never modified)."""
    root = tmp_path_factory.mktemp("cocon") / "store"
    assert run_cli("run", "--videos", sample_videos, "--out", root, "--views", "rgb,flow_dis", "--no-progress") == 0
    return root


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
