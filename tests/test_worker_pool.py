"""A worker process that dies in the middle of a video (a segfault in FFmpeg or OpenCV, an out-of-memory
kill) costs that video only: it is recorded as failed with the cause, its shard is made again without it,
and every other video is stored."""

from __future__ import annotations

import json
import threading
import multiprocessing as mp
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest

from preprocess.errors import WorkerError
from preprocess.dask_runs import LOST_WORKER
from preprocess.pipeline import ShardTask
from preprocess.views import ViewOptions
from preprocess.worker_pool import _after_death, _ShardProgress, _Worker, death_cause
from tests.conftest import FAST_TVL1, ROOT, python_cmd, run_cli

VIEWS = ("rgb", "flow_tvl1")


def _args(videos: Path, out: Path, progress: bool = False) -> list[str]:
    return ["run", "--videos", str(videos), "--out", str(out), "--views", ",".join(VIEWS), "--tvl1", FAST_TVL1,
            "--videos-per-shard", "3", "--jobs", "1"] + ([] if progress else ["--no-progress"])


def _worker_and_open_video(run_pid: int, videos: Path) -> tuple[int, str] | None:
    """(pid, video path) of a child process of `run_pid` while it has a video of `videos` open, else None."""
    children = []
    for thread in Path(f"/proc/{run_pid}/task").glob("*"):    # children of every thread of the process
        try:
            children += (thread / "children").read_text().split()
        except OSError:
            continue
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
        worker, video_file = _wait_for_open_video(proc.pid, sample_videos, proc.poll)
        os.kill(worker, sig)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, err                                   # exit 3: some videos failed
    victim, n = _only_that_video_failed(store, video_file, f"its worker process {death_cause(-sig)}")
    assert f"warning: video {victim}" in err
    assert f"{n}/{n} videos" in err and f"{n + 1}/{n} videos" not in err  # each video counted once
    assert run_cli(*_args(sample_videos, store)) == 3                  # a re-run has nothing left to do


def test_a_dask_worker_dying_mid_video_fails_that_video_only(sample_videos, tmp_path):
    """On Dask the scheduler gives up on the shard (KilledWorker; allowed-failures 0 here, 3 by default), and
    the run resubmits it without the video its worker was making."""
    distributed = pytest.importorskip("dask.distributed")
    import dask
    store, outcome = tmp_path / "store", {}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster:
        args = _args(sample_videos, store) + ["--scheduler", cluster.scheduler_address]
        run = threading.Thread(target=lambda: outcome.setdefault("rc", run_cli(*args)))
        run.start()
        worker, video_file = _wait_for_open_video(os.getpid(), sample_videos, lambda: outcome.get("rc"))
        os.kill(worker, signal.SIGKILL)
        run.join(timeout=300)
    assert outcome.get("rc") == 3
    _only_that_video_failed(store, video_file, LOST_WORKER)


def _wait_for_open_video(parent: int, videos: Path, finished) -> tuple[int, str]:
    """(pid, video path) of a child of `parent` caught with a video open (the run must not have `finished`)."""
    deadline = time.time() + 120
    while time.time() < deadline and finished() is None:
        found = _worker_and_open_video(parent, videos.resolve())
        if found is not None:
            return found
        time.sleep(0.002)
    raise AssertionError("never saw a worker with a video open")


def _only_that_video_failed(store: Path, video_file: str, cause: str) -> tuple[str, int]:
    """Check that the video at `video_file` failed in every view with `cause`, that every other video is
    stored and that the store verifies; (its id, the number of videos)."""
    manifest = json.loads((store / "manifest.json").read_text())
    ids = {str(Path(r["path"]).resolve()): r["id"] for r in manifest["records"]}
    victim = ids[video_file]
    table = (store / "failures.tsv").read_text().splitlines()[1:]
    assert sorted(line.split("\t")[:2] for line in table) == sorted([v, victim] for v in VIEWS)
    assert all(f"\t{cause} while making this video\t" in line for line in table), table
    for view in VIEWS:                                                 # every other video, in every view
        assert _stored_ids(store, view) == set(ids.values()) - {victim}
    assert run_cli("verify", store) == 0
    return victim, len(ids)


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
    with pytest.raises(WorkerError, match=r"shard 7: its worker process died of SIGKILL \(out of memory\?\) twice, "
                                          r"outside any video"):
        _after_death(_killed_worker(None), deaths)
