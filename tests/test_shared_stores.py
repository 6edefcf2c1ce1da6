"""Stores shared on a cluster: files readable by the group, one maker per shard, damaged shards set aside and
remade, failed videos retried, and any file name carried through unchanged. Files are generated on the fly."""

from __future__ import annotations

import csv
import os
import socket
import stat
import time
from pathlib import Path

import numpy as np

from preprocess.names import from_h5_text, unshown
from preprocess.store import Store
from preprocess.store.claims import STALE_S, claim_path
from preprocess.synthetic import encode_video, textured_image
from tests.conftest import run_cli

NON_UTF8 = os.fsdecode(b"caf\xe9")      # a Latin-1 name, as old archives have


def _video(path: Path, n: int = 8, seed: int = 1) -> Path:
    return encode_video(path, [np.roll(textured_image(48, 64, seed=seed), i, axis=1) for i in range(n)])


def _run(videos: Path, out: Path, *extra: str) -> int:
    return run_cli("run", "--videos", videos, "--out", out, "--views", "rgb", "--size", "32", "--no-progress",
                   "--jobs", "1", "--videos-per-shard", "1", *extra)


def test_every_file_of_a_store_respects_the_umask(tmp_path):
    _video(tmp_path / "videos" / "a.mp4")
    old = os.umask(0o022)
    try:
        assert _run(tmp_path / "videos", tmp_path / "s") == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "s").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "view.json", "shard-00000.h5"}
    assert any(p.parent.name == "logs" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p     # manifest, view.json, logs were 0600


def test_a_shard_claimed_by_a_live_job_is_left_alone_and_said(tmp_path, capsys):
    """A duplicated array task: the shard's claim belongs to a live process (this one), so the run leaves
    the shard, says so and exits 4; once the claim is gone, a run makes it."""
    _video(tmp_path / "videos" / "a.mp4")
    root = tmp_path / "s"
    claim = claim_path(root, 0)
    claim.parent.mkdir(parents=True)
    claim.write_text(f"{socket.gethostname()} {os.getpid()}")
    assert _run(tmp_path / "videos", root) == 4
    err = capsys.readouterr().err
    assert f"warning: shard 0 left alone: shard-00000 is being made by {socket.gethostname()} pid {os.getpid()}" in err
    assert not (root / "rgb" / "shard-00000.h5").exists()
    claim.unlink()
    assert _run(tmp_path / "videos", root) == 0
    assert Store(root).video_ids("rgb") == ["a"] and not claim.exists()   # released after the shard


def test_partials_of_a_dead_job_on_another_host_are_removed(tmp_path):
    """A re-submission on another node: the old node's claim has no heartbeat for longer than STALE_S and
    its partial files are removed; a fresh claim of another host is respected."""
    _video(tmp_path / "videos" / "a.mp4")
    _video(tmp_path / "videos" / "b.mp4", seed=2)
    root = tmp_path / "s"
    (root / "rgb").mkdir(parents=True)
    for shard in (0, 1):
        (root / "rgb" / f".shard-0000{shard}.h5.partial-othernode-4242").write_bytes(b"half a shard")
        claim_path(root, shard).parent.mkdir(exist_ok=True)
        claim_path(root, shard).write_text("othernode 4242")
    old = time.time() - STALE_S - 60
    os.utime(claim_path(root, 0), (old, old))                       # shard 0: dead for 11 minutes
    assert _run(tmp_path / "videos", root) == 4                        # shard 1: othernode may still run
    assert not (root / "rgb" / ".shard-00000.h5.partial-othernode-4242").exists()
    assert (root / "rgb" / "shard-00000.h5").exists() and not claim_path(root, 0).exists()
    assert (root / "rgb" / ".shard-00001.h5.partial-othernode-4242").exists()


def test_a_damaged_finished_shard_is_set_aside_and_remade(tmp_path, capsys):
    _video(tmp_path / "videos" / "a.mp4")
    _video(tmp_path / "videos" / "b.mp4", seed=2)
    root = tmp_path / "s"
    assert _run(tmp_path / "videos", root) == 0
    good = Store(root).read("b", "rgb")
    shard = root / "rgb" / "shard-00001.h5"
    shard.write_bytes(shard.read_bytes()[:3000])                      # cut: HDF5 cannot open it
    assert run_cli("verify", root) == 1
    capsys.readouterr()
    assert _run(tmp_path / "videos", root) == 0                        # was: an OSError traceback
    err = capsys.readouterr().err
    assert "warning: rgb/shard-00001.h5 is damaged (" in err and "set aside as shard-00001.h5.damaged-" in err
    assert len(list((root / "rgb").glob("shard-00001.h5.damaged-*"))) == 1
    np.testing.assert_array_equal(Store(root).read("b", "rgb"), good)
    assert run_cli("verify", root) == 0


def test_retry_failed_remakes_videos_that_failed_for_the_given_reasons(tmp_path, capsys):
    """A file fixed after a run (here: first garbage, then a real video) is stored by --retry-failed; a
    retry of another reason class leaves it; failures.tsv then loses its stale line."""
    videos = tmp_path / "videos"
    _video(videos / "good.mp4")
    (videos / "fixed.mp4").write_bytes(b"not yet a video" * 100)
    root = tmp_path / "s"
    assert _run(videos, root) == 3
    assert "fixed" in (root / "failures.tsv").read_text()
    _video(videos / "fixed.mp4", seed=3)
    assert _run(videos, root) == 3                                     # finished shards are not redone
    assert _run(videos, root, "--retry-failed", "crashed,truncated") == 3
    assert _run(videos, root, "--retry-failed", "bogus") == 2
    assert "unknown reason class(es) bogus" in capsys.readouterr().err
    before = (root / "rgb" / "shard-00001.h5").stat().st_mtime_ns
    assert _run(videos, root, "--retry-failed", "unreadable") == 0
    assert "retrying 1 failed videos (unreadable) in 1 shards" in capsys.readouterr().err
    assert Store(root).video_ids("rgb") == ["fixed", "good"]
    assert (root / "rgb" / "shard-00001.h5").stat().st_mtime_ns == before   # the good shard untouched
    assert not (root / "failures.tsv").exists()
    assert run_cli("verify", root) == 0


def test_any_file_name_round_trips_and_every_skipped_path_is_said(tmp_path, capsys):
    """Undecodable bytes, a tab and a newline in names; a broken symbolic link. Re-runs work, failures.tsv
    keeps one line per failure with the names escaped, and the escaped names read back to the originals."""
    videos = tmp_path / "videos"
    good = _video(tmp_path / "src.mp4").read_bytes()
    (videos).mkdir()
    (videos / f"{NON_UTF8}.mp4").write_bytes(good)
    (videos / "tab\there.mp4").write_bytes(good)
    (videos / "new\nline.mp4").write_bytes(b"garbage" * 100)
    (videos / f"bad{NON_UTF8}\t.mp4").write_bytes(b"garbage" * 100)
    os.symlink(tmp_path / "nowhere.mp4", videos / "broken.mp4")
    root = tmp_path / "s"
    for _ in range(2):                                                  # the re-run, too (it was aborted)
        assert _run(videos, root) == 3
        err = capsys.readouterr().err
        assert f"warning: skipped '{videos / 'broken.mp4'}': a broken symbolic link" in err
    store = Store(root)
    assert sorted(store.video_ids("rgb")) == sorted([NON_UTF8, "tab\there"])
    assert store.read(NON_UTF8, "rgb").shape == (3, 32, 43, 3)
    assert from_h5_text(store.video_attrs(NON_UTF8, "rgb")["source_path"]) == str(videos / f"{NON_UTF8}.mp4")
    lines = (root / "failures.tsv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3                                              # header + 2 failures, one line each
    rows = list(csv.reader(lines[1:], delimiter="\t", quoting=csv.QUOTE_NONE))
    assert sorted(unshown(r[1]) for r in rows) == sorted([f"bad{NON_UTF8}\t", "new\nline"])
    assert sorted(r[1] for r in rows) == ["bad" + "caf\\xe9" + "\\t", "new\\nline"]
    assert sorted(unshown(r[3]) for r in rows) == sorted(str(videos / n) for n in (f"bad{NON_UTF8}\t.mp4",
                                                                                  "new\nline.mp4"))
    capsys.readouterr()
    assert run_cli("info", root, "--failures") == 0
    assert "failed rgb new\\nline: cannot open" in capsys.readouterr().out


def test_reason_classes_match_the_reasons_the_pipeline_writes():
    """--retry-failed crashed must catch what the supervisors write when a worker dies (an OOM kill)."""
    from preprocess.dask_runs import LOST_WORKER
    from preprocess.pipeline import ShardTask
    from preprocess.retry import reason_class
    from preprocess.views import ViewOptions
    from preprocess.worker_pool import after_death, death_cause
    task = ShardTask("root", 0, [], ["rgb"], ViewOptions())
    oom = after_death(task, "v", f"its worker process {death_cause(-9)}", {}).crashed["v"]
    assert oom == "its worker process died of SIGKILL (out of memory?) while making this video"
    assert reason_class(oom) == "crashed"
    assert reason_class(after_death(task, "v", LOST_WORKER, {}).crashed["v"]) == "crashed"
    assert reason_class("truncated: decoded 13 frames (to 0.48 s) of the 2.40 s the container declares") == "truncated"
    assert reason_class("decode error after 4 frames: Invalid data") == "decode"
    assert reason_class("empty file (0 bytes)") == "unreadable"
    assert reason_class("too short: 1 decodable frame(s), at least 2 are needed") == "short"
    assert reason_class("ValueError: something new") == "other"
