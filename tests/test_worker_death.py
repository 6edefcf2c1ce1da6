"""A worker process that dies in the middle of a video (a segfault in FFmpeg or OpenCV, an out-of-memory
kill) costs that video only: it is recorded as failed with the cause, its shard is made again without it,
and every other video is stored."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest

from preprocess.errors import WorkerError
from preprocess.pipeline import ShardTask
from preprocess.views import ViewOptions
from preprocess.worker_pool import _after_death, _ShardProgress, _Worker, death_cause
from tests.conftest import FAST_TVL1, ROOT, python_cmd, run_cli

VIEWS = ("rgb", "flow_tvl1")


def _args(videos: Path, out: Path, progress: bool = False) -> list[str]:
    return ["run", "--videos", str(videos), "--out", str(out), "--views", ",".join(VIEWS), "--tvl1", FAST_TVL1,
            "--videos-per-shard", "3", "--jobs", "1"] + ([] if progress else ["--no-progress"])


def _worker_and_open_video(run_pid: int, videos: Path) -> tuple[int, str] | None:
    """(pid, video path) of the run's worker while it has a video of `videos` open, else None."""
    try:
        children = Path(f"/proc/{run_pid}/task/{run_pid}/children").read_text().split()
    except OSError:
        return None
    for pid in map(int, children):
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith(str(videos)) and target.endswith(".mp4"):
                    return pid, target
        except OSError:
            continue
    return None


def _stored_ids(store: Path, view: str) -> set[str]:
    ids = set()
    for shard in (store / view).glob("shard-*.h5"):
        with h5py.File(shard, "r") as f:
            ids.update(str(g.attrs["id"]) for g in f["videos"].values())
    return ids


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_worker_dying_mid_video_fails_that_video_only(sample_videos, tmp_path, sig):
    store = tmp_path / "store"
    proc = subprocess.Popen(python_cmd() + _args(sample_videos, store, progress=True), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, found = time.time() + 120, None
        while found is None and time.time() < deadline and proc.poll() is None:
            found = _worker_and_open_video(proc.pid, sample_videos.resolve())
            time.sleep(0.002)
        assert found is not None, "never saw the worker with a video open"
        worker, video_file = found
        os.kill(worker, sig)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    manifest = json.loads((store / "manifest.json").read_text())
    ids = {str(Path(r["path"]).resolve()): r["id"] for r in manifest["records"]}
    victim = ids[video_file]
    assert proc.returncode == 3, err                                   # exit 3: some videos failed
    table = (store / "failures.tsv").read_text().splitlines()[1:]
    assert sorted(line.split("\t")[:2] for line in table) == sorted([v, victim] for v in VIEWS)
    cause = death_cause(-sig)
    assert all(f"its worker process {cause} while making this video" in line for line in table)
    for view in VIEWS:                                                 # every other video, in every view
        assert _stored_ids(store, view) == set(ids.values()) - {victim}
    assert f"warning: video {victim}" in err
    n = len(ids)
    assert f"{n}/{n} videos" in err and f"{n + 1}/{n} videos" not in err  # each video counted once
    assert run_cli("verify", store) == 0
    assert run_cli(*_args(sample_videos, store)) == 3                  # a re-run has nothing left to do


def test_progress_counts_each_video_once_across_a_shard_rerun():
    seen: list[int] = []
    progress = _ShardProgress(seen.append)
    progress.finished(0, 2)          # 2 videos of shard 0 finished, then its worker died
    progress.finished(0, 1)          # the re-run passes the same videos again: not counted twice
    progress.finished(1, 3)
    progress.finished(0, 4)          # shard 0 done (4 videos)
    assert seen == [2, 3, 2] and sum(seen) == 7


def test_death_causes_read_as_words():
    assert death_cause(-9) == "died of SIGKILL (out of memory?)"
    assert death_cause(-11) == "died of SIGSEGV (a crash inside a native library)"
    assert death_cause(1) == "exited with status 1"


def _killed_worker(video: str | None) -> _Worker:
    """A real process killed with SIGKILL, as the supervisor would find a worker that was making `video`."""
    ctx = mp.get_context("spawn")
    parent, _child = ctx.Pipe()
    process = ctx.Process(target=time.sleep, args=(60,), daemon=True)
    process.start()
    os.kill(process.pid, signal.SIGKILL)
    task = ShardTask("/nowhere", 7, [], ["rgb"], ViewOptions(), crashed={"earlier": "an earlier death"})
    return _Worker(process, parent, task=task, video=video)


def test_a_death_blames_the_video_in_flight_and_keeps_earlier_ones():
    again = _after_death(_killed_worker("b"), {})
    assert again.shard == 7 and again.crashed == {
        "earlier": "an earlier death",
        "b": "its worker process died of SIGKILL (out of memory?) while making this video"}


def test_a_death_outside_any_video_gets_one_more_try_then_stops_the_run():
    deaths: dict[int, int] = {}
    again = _after_death(_killed_worker(None), deaths)
    assert again.crashed == {"earlier": "an earlier death"}           # the same shard, nobody blamed
    with pytest.raises(WorkerError, match="died of SIGKILL .* twice on shard 7, outside any video"):
        _after_death(_killed_worker(None), deaths)
