"""Nothing silently wrong in what a video yields: truncated containers, frames missing at the end, extreme
aspect ratios, repeated source frames and damaged chunks are each recorded, flagged or failed, never stored
as if complete. Every file is generated on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import av
import h5py
import numpy as np
import pytest

from preprocess.store import Store
from preprocess.store.layout import video_key
from preprocess.synthetic import encode_video, textured_image
from tests.conftest import run_cli

TEXTURE = textured_image(96, 160, seed=3)


def _panning(n: int, step: int = 2) -> list[np.ndarray]:
    """n frames 64x96 of a texture panning `step` px right per frame."""
    return [np.ascontiguousarray(np.roll(TEXTURE, -step * i, axis=1)[:64, :96]) for i in range(n)]


def _decoded(path: Path) -> int:
    try:
        with av.open(str(path)) as c:
            return sum(1 for _ in c.decode(video=0))
    except av.error.FFmpegError:
        return -1


def _cut(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def _cut_until_short(src: Path, dst: Path, total: int) -> int:
    """Cut `src` from the end, 1% at a time, until decoding loses frames; return how many it lost."""
    for keep in np.arange(0.99, 0.5, -0.01):
        n = _decoded(_cut(src, dst, keep))
        if 0 < n < total:
            return total - n
    raise AssertionError(f"no cut of {src} loses frames")


def _run(videos: Path, out: Path, *extra: str, views: str = "rgb") -> int:
    return run_cli("run", "--videos", videos, "--out", out, "--views", views, "--size", "32", "--no-progress",
                   "--jobs", "1", *extra)


@pytest.mark.parametrize("name,codec", [("h264.mkv", "libx264"), ("vp9.webm", "libvpx-vp9"), ("ffv1.mkv", "ffv1")])
def test_a_matroska_file_cut_in_half_is_recorded_as_truncated(tmp_path, capsys, name, codec):
    """Matroska/WebM declare no frame count, only a duration: 60 frames at 25 fps are 2.4 s; a file cut at
    50% decodes far fewer frames and must fail as truncated (it was stored as a complete video)."""
    full = encode_video(tmp_path / "src" / name, _panning(60), codec=codec)
    videos = tmp_path / "videos"
    videos.mkdir()
    _cut(full, videos / f"half_{name}", 0.5)
    (videos / f"whole_{name}").write_bytes(full.read_bytes())
    assert _run(videos, tmp_path / "store") == 3
    err = capsys.readouterr().err
    assert f"failed rgb half_{name.split('.')[0]}: truncated: decoded" in err and "of the 2.40 s" in err, err
    store = Store(tmp_path / "store")
    whole = f"whole_{name.split('.')[0]}"
    assert store.video_ids("rgb") == [whole] and store.num_frames(whole, "rgb") == 20    # 0, 3, ..., 57
    assert store.video_attrs(whole, "rgb")["missing_end_frames"] == 0


def test_frames_missing_at_the_end_are_flagged_within_the_tolerance_and_failed_beyond(tmp_path, capsys):
    """An AVI declares its frame count (90 here); a cut that loses a few end frames is stored only within
    --max-missing-frames, with the gap in the video's attributes and counted by `info`."""
    src = encode_video(tmp_path / "src" / "clip.avi", _panning(90), codec="mpeg4")
    videos = tmp_path / "videos"
    videos.mkdir()
    lost = _cut_until_short(src, videos / "cut.avi", 90)
    assert _run(videos, tmp_path / "strict", "--max-missing-frames", str(lost - 1)) == 3
    assert f"{lost} missing (tolerance: --max-missing-frames {lost - 1})" in capsys.readouterr().err
    assert _run(videos, tmp_path / "lenient", "--max-missing-frames", str(lost)) == 0
    attrs = Store(tmp_path / "lenient").video_attrs("cut", "rgb")
    assert attrs["missing_end_frames"] == lost and attrs["expected_frames"] == 90
    assert attrs["source_frames"] == 90 - lost
    capsys.readouterr()
    assert run_cli("info", tmp_path / "lenient") == 0
    assert f"1 videos end before their declared length ({lost} frames missing in all" in capsys.readouterr().out


def test_an_extreme_aspect_ratio_is_bounded_and_flagged(tmp_path, capsys):
    """16x1600 at short side 32 would be 32x3200; --max-long-side 400 stores it as 4x400 (16 * 400 / 1600)."""
    videos = tmp_path / "videos"
    strip = np.tile(textured_image(16, 200, seed=1), (1, 8, 1))
    encode_video(videos / "strip.mp4", [np.roll(strip, i, axis=1) for i in range(8)])
    encode_video(videos / "normal.mp4", _panning(8))
    assert _run(videos, tmp_path / "store", "--max-long-side", "400", views="rgb,flow_farneback") == 0
    store = Store(tmp_path / "store")
    assert store.read("strip", "rgb").shape[1:] == (4, 400, 3)
    assert store.read("strip", "flow_farneback").shape[1:] == (4, 400, 2)
    assert store.video_attrs("strip", "rgb")["long_side_capped"]
    assert not store.video_attrs("normal", "rgb")["long_side_capped"]
    assert store.read("normal", "rgb").shape[1:] == (32, 48, 3)
    capsys.readouterr()
    assert run_cli("info", tmp_path / "store") == 0
    out = capsys.readouterr().out
    assert "1 videos have an extreme aspect ratio" in out
    assert "frame shape (4..32)x(48..400)x3" in out          # the range over videos, not the first shape


def _doubled_video(path: Path, content_frames: int = 16) -> Path:
    """A 50 fps file of 25 fps content: every content frame shown twice (source frames 2k and 2k+1), the
    last one once (so that the last stored frame has a differing successor too)."""
    frames = _panning(content_frames, step=3)
    return encode_video(path, [f for f in frames for _ in range(2)][:-1], fps=50)


def test_flow_of_a_repeated_frame_goes_to_the_next_frame_that_differs(tmp_path, capsys):
    """Stored frames 0, 3, ..., 27 of doubled content (31 source frames): an even t repeats at t+1, so its
    flow goes to t+2; an odd t is followed by new content at t+1. The pan is 3 px per content frame at 64
    rows, 1.5 px at the stored short side 32, leftwards: every stored flow must show it."""
    videos = tmp_path / "videos"
    _doubled_video(videos / "doubled.mp4")
    assert _run(videos, tmp_path / "new", views="rgb,flow_farneback") == 0
    assert _run(videos, tmp_path / "old", "--flow-target", "next", views="rgb,flow_farneback") == 0
    new, old = Store(tmp_path / "new"), Store(tmp_path / "old")
    indices = new.frame_indices("doubled", "flow_farneback")
    assert indices.tolist() == list(range(0, 28, 3))
    np.testing.assert_array_equal(new.frame_indices("doubled", "rgb"), indices)     # views stay aligned
    targets = new.flow_targets("doubled", "flow_farneback")
    np.testing.assert_array_equal(old.flow_targets("doubled", "flow_farneback"), indices + 1)
    assert targets.tolist() == [t + 2 if t % 2 == 0 else t + 1 for t in indices]
    u_new = new.read("doubled", "flow_farneback", pixels=True)[..., 0].mean(axis=(1, 2))
    u_old = old.read("doubled", "flow_farneback", pixels=True)[..., 0].mean(axis=(1, 2))
    assert np.all(u_new < -0.5), u_new                     # 3 px at 64 rows -> 1.5 px at 32: real motion
    assert np.all(np.abs(u_old[indices % 2 == 0]) < 0.05)  # today's rule: zero flow on every repeat
    assert new.video_attrs("doubled", "flow_farneback")["repeated_successors"] == 5
    capsys.readouterr()
    assert run_cli("info", tmp_path / "new") == 0
    assert "5 stored frames have a repeated next source frame; 5 have flow to the next frame that differs" \
        in capsys.readouterr().out
    assert run_cli("verify", tmp_path / "new") == 0


def test_the_flow_target_rule_is_a_setting_a_rerun_must_match(tmp_path, capsys):
    videos = tmp_path / "videos"
    _doubled_video(videos / "doubled.mp4", content_frames=4)
    assert _run(videos, tmp_path / "s", views="flow_farneback") == 0
    capsys.readouterr()
    assert _run(videos, tmp_path / "s", "--flow-target", "next", views="flow_farneback") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frames.flow_target: 'next-different' in the store, 'next' in this run" in err[0]


def test_the_flow_input_text_says_where_each_flow_goes_and_the_older_text_still_resumes(tmp_path, capsys):
    videos = tmp_path / "videos"
    _doubled_video(videos / "doubled.mp4", content_frames=4)
    t1 = "grey frames at the stored size, source frame t -> t+1"
    assert _run(videos, tmp_path / "next", "--flow-target", "next", views="flow_farneback") == 0
    assert json.loads((tmp_path / "next" / "flow_farneback" / "view.json").read_text())["params"]["input"] == t1
    root = tmp_path / "s"
    assert _run(videos, root, views="flow_farneback") == 0
    path = root / "flow_farneback" / "view.json"
    meta = json.loads(path.read_text())
    assert meta["params"]["input"].startswith(t1 + ", or -> the next source frame that differs when t+1 repeats t")
    meta["params"]["input"] = t1                    # as the version before said it under next-different
    path.write_text(json.dumps(meta))
    assert _run(videos, root, views="flow_farneback") == 0
    assert _run(videos, root, "--flow-target", "next", views="flow_farneback") == 2   # the rule itself still counts


def test_a_store_made_before_flow_targets_and_frame_settings_still_reads_verifies_and_resumes(tmp_path, capsys):
    """An older store has no `frames` in view.json and no flow_target_indices: it reads and verifies, and
    resumes with the settings it implied (flow to t+1, no bound on the long side)."""
    videos = tmp_path / "videos"
    _doubled_video(videos / "a.mp4", content_frames=4)
    _doubled_video(videos / "b.mp4", content_frames=5)
    legacy = ("--flow-target", "next", "--max-long-side", "0")
    root = tmp_path / "s"
    assert _run(videos, root, *legacy, "--videos-per-shard", "1", views="rgb,flow_farneback") == 0
    for view in ("rgb", "flow_farneback"):
        meta = json.loads((root / view / "view.json").read_text())
        del meta["frames"]
        (root / view / "view.json").write_text(json.dumps(meta))
    with h5py.File(root / "flow_farneback" / "shard-00000.h5", "a") as f:
        del f["videos"][video_key("a")]["flow_target_indices"]
    (root / "rgb" / "shard-00001.h5").unlink()
    assert run_cli("verify", root) == 1                                  # a shard missing, nothing else
    old = Store(root)
    assert old.read("a", "flow_farneback").shape == (2, 32, 48, 2)            # 7 source frames: 0 and 3
    assert old.flow_targets("a", "flow_farneback").tolist() == [1, 4]
    old.close()
    capsys.readouterr()
    assert _run(videos, root, views="rgb,flow_farneback") == 2          # today's defaults would mix rules
    assert "rgb was made with other settings (frames.max_long_side: 0 in the store, 1024 in this run)" \
        in capsys.readouterr().err
    assert _run(videos, root, "--max-long-side", "0", views="rgb,flow_farneback") == 2
    assert "flow_farneback was made with other settings (frames.change_level: (absent) in the store, 8 in this " \
        "run; frames.flow_target: 'next' in the store, 'next-different' in this run;" in capsys.readouterr().err
    assert _run(videos, root, *legacy, views="rgb,flow_farneback") == 0
    assert run_cli("verify", root, "--deep") == 0


def test_flipped_bytes_in_a_chunk_fail_deep_verify_and_every_read(tmp_path, capsys):
    """Each chunk carries a Fletcher-32 checksum: 4 flipped bytes inside a compressed chunk are caught."""
    videos = tmp_path / "videos"
    encode_video(videos / "v.mp4", _panning(31))
    root = tmp_path / "s"
    assert _run(videos, root) == 0
    shard = root / "rgb" / "shard-00000.h5"
    with h5py.File(shard) as f:
        frames = f["videos"]["v"]["frames"]
        assert frames.fletcher32
        offset, size = frames.id.get_chunk_info(1).byte_offset, frames.id.get_chunk_info(1).size
    data = bytearray(shard.read_bytes())
    for k in range(4):
        data[offset + size // 2 + k] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert run_cli("verify", root) == 0                                  # metadata alone is intact
    capsys.readouterr()
    assert run_cli("verify", root, "--deep") == 1
    out = capsys.readouterr().out
    assert "rgb: video 'v' in shard-00000.h5: frames is damaged" in out
    store = Store(root)
    assert store.read("v", "rgb", 0, 5).shape == (5, 32, 48, 3)          # chunk 0 is intact
    with pytest.raises(Exception, match="are damaged"):
        store.read("v", "rgb", 5, 10)
    with pytest.raises(Exception, match="are damaged"):                  # a crop of it, as training reads it
        store.read("v", "rgb", 5, 10, box=(0, 0, 8, 8), out=np.empty((5, 8, 8, 3), np.uint8))
