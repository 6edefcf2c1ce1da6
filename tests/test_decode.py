"""Decoding: stride and frame indices, short-side area resize, rotation, odd sizes, VFR, containers."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from preprocess.decode import VideoMeta, decode_pairs, target_size
from preprocess.store import Store
from preprocess.synthetic import encode_video, textured_image
from tests.conftest import run_cli


def _grey_ramp(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """Frame i is uniformly 10*i grey, so a stored frame tells which source frame it was."""
    return [np.full((h, w, 3), 10 * i, np.uint8) for i in range(n)]


@pytest.mark.parametrize("n,expected", [(20, [0, 3, 6, 9, 12, 15, 18]), (19, [0, 3, 6, 9, 12, 15])])
def test_stride_keeps_frames_with_a_successor(tmp_path, n, expected):
    path = encode_video(tmp_path / "ramp.mp4", _grey_ramp(n), crf=0)
    meta = VideoMeta()
    pairs = list(decode_pairs(str(path), 3, 48, True, meta))
    assert [p.index for p in pairs] == expected
    for p in pairs:
        assert abs(float(p.rgb.mean()) - 10 * p.index) < 2
        assert abs(float(p.next_rgb.mean()) - 10 * (p.index + 1)) < 2
    assert meta.decoded_frames == n and meta.fps == 25.0


def test_target_size():
    assert target_size(240, 320, 128) == (128, 171)
    assert target_size(320, 240, 128) == (171, 128)
    assert target_size(97, 131, 128) == (128, 173)
    assert target_size(128, 128, 128) == (128, 128)


def test_resize_is_area_interpolation_of_the_decoded_frame(tmp_path):
    frames = [textured_image(240, 320, seed=i) for i in range(4)]
    path = encode_video(tmp_path / "big.mp4", frames, crf=10)
    with av.open(str(path)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    pair = next(decode_pairs(str(path), 3, 128, False, VideoMeta()))
    np.testing.assert_array_equal(pair.rgb, cv2.resize(first, (171, 128), interpolation=cv2.INTER_AREA))


def test_rgb_round_trips_exactly_through_a_lossless_codec(tmp_path):
    frames = [textured_image(128, 172, seed=i) for i in range(7)]
    encode_video(tmp_path / "v" / "clip.mkv", frames, codec="ffv1", pix_fmt="bgr0")
    assert run_cli("run", "--videos", tmp_path / "v", "--out", tmp_path / "s", "--views", "rgb", "--no-progress") == 0
    store = Store(tmp_path / "s")
    np.testing.assert_array_equal(store.frame_indices("clip", "rgb"), [0, 3])
    np.testing.assert_array_equal(store.read("clip", "rgb"), np.stack([frames[0], frames[3]]))
    attrs = store.video_attrs("clip", "rgb")
    assert tuple(attrs["original_size"]) == (128, 172) and attrs["source_frames"] == 7


def test_rgb_adds_nothing_to_a_lossy_codec(tmp_path):
    """Stored frames equal PyAV's own decode of the file: the only error is the codec's."""
    frames = [textured_image(128, 172, seed=i) for i in range(7)]
    path = encode_video(tmp_path / "v" / "clip.mp4", frames, crf=20)
    assert run_cli("run", "--videos", tmp_path / "v", "--out", tmp_path / "s", "--views", "rgb", "--no-progress") == 0
    with av.open(str(path)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    np.testing.assert_array_equal(Store(tmp_path / "s").read("clip", "rgb"), np.stack([decoded[0], decoded[3]]))


def test_rotation_metadata_is_applied(tmp_path):
    img = np.zeros((48, 64, 3), np.uint8)
    img[:12, :16] = 255                      # white block top-left in the coded frame
    path = encode_video(tmp_path / "rot.mp4", [img] * 4, crf=0, rotation=90)
    meta = VideoMeta()
    pair = next(decode_pairs(str(path), 1, 48, False, meta))
    assert meta.rotation == 90 and meta.original_size == (64, 48)
    assert pair.rgb.shape == (64, 48, 3)     # displayed upright: portrait
    # a 90 degree counter-clockwise display rotation takes the top-left corner to the bottom-left
    assert pair.rgb[-8:, :8].mean() > 200 and pair.rgb[:8, :8].mean() < 50


def test_odd_frame_size(tmp_path):
    frames = [textured_image(97, 131, seed=i) for i in range(5)]
    path = encode_video(tmp_path / "odd.mp4", frames, pix_fmt="yuv444p", crf=10)
    meta = VideoMeta()
    pairs = list(decode_pairs(str(path), 2, 128, True, meta))
    assert [p.index for p in pairs] == [0, 2]
    assert pairs[0].rgb.shape == (128, 173, 3) and pairs[0].next_rgb.shape == (128, 173, 3)
    assert meta.original_size == (97, 131)


def test_variable_frame_rate_times_are_recorded(tmp_path):
    path = tmp_path / "vfr.mp4"
    pts_ms = [0, 40, 80, 200, 210, 220, 500, 540]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = pts, Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    pairs = list(decode_pairs(str(path), 2, 48, False, VideoMeta()))
    assert [p.index for p in pairs] == [0, 2, 4, 6]
    np.testing.assert_allclose([p.time for p in pairs], [0.0, 0.08, 0.21, 0.5], atol=1e-6)


CONTAINERS = {
    "xvid.avi": dict(codec="mpeg4", pix_fmt="yuv420p"),
    "vp9.webm": dict(codec="libvpx-vp9", pix_fmt="yuv420p"),
    "anim.gif": dict(codec="gif", pix_fmt="rgb8"),
    "ffv1.mkv": dict(codec="ffv1", pix_fmt="yuv420p"),
    "h264.mp4": dict(codec="libx264", pix_fmt="yuv420p"),
}


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_containers_and_codecs(tmp_path, name):
    frames = [textured_image(60, 80, seed=i) for i in range(10)]
    path = encode_video(tmp_path / name, frames, fps=10, **CONTAINERS[name])
    meta = VideoMeta()
    pairs = list(decode_pairs(str(path), 3, 60, True, meta))
    assert [p.index for p in pairs] == [0, 3, 6]
    assert pairs[0].rgb.shape == (60, 80, 3)
    assert meta.decoded_frames == 10
    err = np.abs(pairs[1].rgb.astype(int) - frames[3].astype(int)).mean()
    assert err < 40, f"{name}: mean abs error {err}"   # gif: 256-colour palette is lossy
