"""Every kind of bad input goes into the failures record with its reason; the batch goes on."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np

from preprocess.store import Store
from preprocess.synthetic import encode_video, textured_image
from tests.conftest import run_cli


def _make_bad_inputs(folder: Path) -> dict[str, str]:
    """Write one file of each bad kind; return video id -> a word its failure reason must contain."""
    folder.mkdir(parents=True)
    good = [textured_image(48, 64, seed=i) for i in range(12)]
    encode_video(folder / "good.mp4", good)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(20000))
    (folder / "notes.avi").write_text("this is not a video\n" * 50)
    full = encode_video(folder / "full.mp4", good).read_bytes()
    (folder / "full.mp4").unlink()
    (folder / "truncated_mp4.mp4").write_bytes(full[: len(full) // 2])
    avi = encode_video(folder / "tmp.avi", [textured_image(48, 64, seed=i) for i in range(60)], codec="mpeg4")
    data = avi.read_bytes()
    avi.unlink()
    (folder / "truncated_avi.avi").write_bytes(data[: len(data) // 3])
    with av.open(str(folder / "zero_frames.avi"), "w") as c:       # a video stream, no frame in it
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    with av.open(str(folder / "audio_only.m4a"), "w") as c:         # sound, no picture
        s = c.add_stream("aac", rate=16000)
        samples = (np.sin(np.arange(16000) / 10.0) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    encode_video(folder / "one_frame.mp4", good[:1])
    return {"empty": "empty file (0 bytes)", "corrupt": "cannot open", "notes": "cannot open",
            "truncated_mp4": "cannot open", "truncated_avi": "truncated", "zero_frames": "too short",
            "audio_only": "no video stream", "one_frame": "too short"}


def test_bad_inputs_are_recorded_and_not_fatal(tmp_path, capsys):
    expected = _make_bad_inputs(tmp_path / "videos")
    (tmp_path / "videos" / "audio_only.mp4").write_bytes((tmp_path / "videos" / "audio_only.m4a").read_bytes())
    (tmp_path / "videos" / "audio_only.m4a").unlink()
    rc = run_cli("run", "--videos", tmp_path / "videos", "--out", tmp_path / "store", "--views", "rgb,flow_dis",
                 "--no-progress", "--jobs", "2", "--videos-per-shard", "3")
    err = capsys.readouterr().err
    assert rc == 3, err
    assert f"1 of 9 videos stored in rgb,flow_dis; {len(expected)} failed" in err
    rows = list(csv.DictReader(open(tmp_path / "store" / "failures.tsv"), delimiter="\t"))
    assert len(rows) == 2 * len(expected)                      # one line per video and view
    reasons = {(r["view"], r["video"]): r["reason"] for r in rows}
    for vid, word in expected.items():
        for view in ("rgb", "flow_dis"):
            assert word in reasons[(view, vid)], (vid, reasons[(view, vid)])
    store = Store(tmp_path / "store")
    assert store.video_ids("rgb") == ["good"] and store.frame_indices("good", "flow_dis").tolist() == [0, 3, 6, 9]
    assert run_cli("verify", tmp_path / "store") == 0          # failures are recorded, not inconsistencies
    capsys.readouterr()
    assert run_cli("info", tmp_path / "store", "--failures") == 0
    out = capsys.readouterr().out
    assert "rgb: 1 videos, 8 failed" in out and "failed rgb truncated_avi: truncated" in out
    assert "failed rgb corrupt: cannot open: Invalid data found when processing input" in out


def test_rerun_reports_the_same_failures_without_work(tmp_path, capsys):
    _make_bad_inputs(tmp_path / "videos")
    args = ("run", "--videos", tmp_path / "videos", "--out", tmp_path / "store", "--views", "rgb", "--no-progress")
    assert run_cli(*args) == 3
    first = capsys.readouterr().err
    assert run_cli(*args) == 3
    second = capsys.readouterr().err
    assert "0 to do (0 videos)" in second and "this run made 0 videos" in second
    assert first.split("; this run")[0].split("done: ")[1] == second.split("; this run")[0].split("done: ")[1]


def test_missing_input_folder_is_one_line(tmp_path, capsys):
    assert run_cli("run", "--videos", tmp_path / "nope", "--out", tmp_path / "s") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope" in err[0]
