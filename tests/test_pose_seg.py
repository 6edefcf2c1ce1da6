"""Pose heatmaps and person masks: rendering, COCO-17 order, the mediapipe backends, the store contract."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from preprocess.heatmaps import COCO17, render_heatmaps, to_uint8
from preprocess.store import Store
from preprocess.synthetic import encode_video, textured_image
from tests.conftest import run_cli


def test_render_places_a_gaussian_peaked_at_the_score():
    kps = np.zeros((1, 17, 2), np.float32)
    kps[0, 5] = (10.0, 4.0)                               # left shoulder at x=10, y=4
    scores = np.zeros((1, 17), np.float32)
    scores[0, 5] = 0.8
    maps = render_heatmaps(kps, scores, (16, 20), sigma=2.0)
    assert maps.shape == (16, 20, 17)
    assert np.unravel_index(maps[..., 5].argmax(), (16, 20)) == (4, 10)
    assert maps[4, 10, 5] == pytest.approx(0.8)
    assert maps[4, 12, 5] == pytest.approx(0.8 * np.exp(-0.5), rel=1e-5)   # one sigma away
    assert maps[..., [i for i in range(17) if i != 5]].max() == 0.0
    assert to_uint8(maps)[4, 10, 5] == 204


def test_several_people_combine_by_max_or_weighted_sum():
    kps = np.zeros((2, 17, 2), np.float32)
    kps[:, 0] = [(5.0, 5.0), (5.0, 5.0)]
    scores = np.zeros((2, 17), np.float32)
    scores[:, 0] = [0.6, 0.7]
    assert render_heatmaps(kps, scores, (10, 10), 1.5, "max")[5, 5, 0] == pytest.approx(0.7)
    summed = render_heatmaps(kps, scores, (10, 10), 1.5, "sum", person_scores=np.array([1.0, 0.5]))
    assert summed[5, 5, 0] == pytest.approx(0.6 + 0.35)
    assert render_heatmaps(kps, scores * 2, (10, 10), 1.5, "sum")[5, 5, 0] == 1.0   # clipped


def _mediapipe():
    return pytest.importorskip("mediapipe")


def test_mediapipe_landmarks_map_to_coco17_left_and_right(monkeypatch):
    """A synthetic result: landmark i at x = i/40, visibility 1 -> COCO channel k peaks at its landmark's x."""
    _mediapipe()
    from preprocess.pose_seg import MEDIAPIPE_TO_COCO17, MediapipePose

    pose = MediapipePose(sigma=1.0)
    marks = [types.SimpleNamespace(x=(i + 0.5) / 40, y=0.5, visibility=1.0) for i in range(33)]
    fake = types.SimpleNamespace(process=lambda frame: types.SimpleNamespace(
        pose_landmarks=types.SimpleNamespace(landmark=marks)))
    monkeypatch.setattr(pose, "_model", fake)
    maps = pose([np.zeros((40, 40, 3), np.uint8)], (40, 40))[0]
    peaks = [int(maps[20, :, k].argmax()) for k in range(17)]
    assert peaks == list(MEDIAPIPE_TO_COCO17)
    assert COCO17[5] == "left_shoulder" and MEDIAPIPE_TO_COCO17[5] == 11      # mediapipe LEFT_SHOULDER
    assert COCO17[16] == "right_ankle" and MEDIAPIPE_TO_COCO17[16] == 28     # mediapipe RIGHT_ANKLE


def test_pose_and_seg_views_share_rgb_frames_and_record_their_model(tmp_path):
    _mediapipe()
    frames = [textured_image(120, 160, seed=i) for i in range(20)]
    encode_video(tmp_path / "v" / "clip.mp4", frames)
    assert run_cli("run", "--videos", tmp_path / "v", "--out", tmp_path / "s", "--views", "rgb,flow_dis",
                   "--no-progress") == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "s").glob("*/shard-*.h5")}
    assert run_cli("run", "--videos", tmp_path / "v", "--out", tmp_path / "s", "--views", "pose,seg",
                   "--no-progress") == 0                    # added later, the other views untouched
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert run_cli("verify", tmp_path / "s") == 0
    store = Store(tmp_path / "s")
    np.testing.assert_array_equal(store.frame_indices("clip", "pose"), store.frame_indices("clip", "rgb"))
    assert store.read("clip", "pose").shape == (7, 64, 85, 17)
    assert store.read("clip", "seg").shape == (7, 64, 85, 1)
    meta = json.loads((tmp_path / "s" / "pose" / "view.json").read_text())
    assert meta["params"]["backend"] == "mediapipe" and meta["size"] == 64
    assert len(meta["params"]["model_digests"]["modules/pose_landmark/pose_landmark_full.tflite"]) == 16


WHOLE_BODY = ("soccer_juggling__ucf101-via-torchvision-assets__1", "soccer_juggling__ucf101-via-torchvision-assets__2",
              "clean_and_jerk__k400-via-mmskeleton__1", "segwaying__k400-via-torchvision-assets__1",
              "segwaying__k400-via-torchvision-assets__2", "segwaying__k400-via-torchvision-assets__3",
              "cricket_shot__ucf101-via-kinetics-i3d__1", "basketball__mmaction2-structuralize-demo__1")


def test_real_clips_pose_finds_people_inside_the_person_mask(real_clips, tmp_path):
    _mediapipe()
    videos = tmp_path / "v"
    videos.mkdir()
    for p in real_clips.iterdir():
        if p.stem in WHOLE_BODY:
            (videos / p.name).symlink_to(p)
    assert run_cli("run", "--videos", videos, "--out", tmp_path / "s", "--views", "pose,seg", "--no-progress") == 0
    store = Store(tmp_path / "s")
    found, inside, total = [], 0.0, 0.0
    for vid in WHOLE_BODY:
        pose = store.read(vid, "pose").astype(np.float32) / 255
        mask = store.read(vid, "seg")[..., 0].astype(np.float32) / 255
        found.append(float((pose.max(axis=(1, 2, 3)) > 0.3).mean()))
        mass = pose.sum(-1)
        inside += float((mass * (mask > 0.1)).sum())
        total += float(mass.sum())
    print("person found per clip", np.round(found, 2), "heatmap mass inside mask", round(inside / total, 2))
    assert np.median(found) >= 0.75                      # a person in most frames
    assert inside / total > 0.5                          # most heatmap mass on the person mask


def test_missing_mediapipe_is_one_line(tmp_path, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "mediapipe", None)       # as if it were not installed
    encode_video(tmp_path / "v" / "clip.mp4", [textured_image(48, 64, seed=i) for i in range(8)])
    rc = run_cli("run", "--videos", tmp_path / "v", "--out", tmp_path / "s", "--views", "rgb,pose", "--no-progress")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: the mediapipe backend needs mediapipe 0.10.21: pip install --no-deps mediapipe")
    assert not (tmp_path / "s" / "manifest.json").exists()     # nothing written before the check
