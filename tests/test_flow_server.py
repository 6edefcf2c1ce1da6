"""The flow server (--flow-server): pairs of several workers and videos computed in shared batches give the
store the bytes it gets without it; a worker's or the server's death neither hangs nor corrupts a run; a kill -9
of the run takes the server with it and a re-run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from preprocess.errors import UserError, WorkerError
from preprocess.flow import FlowSettings, make_flow
from preprocess.store import Store
from preprocess.flow.server import FlowServer, FlowServerError, ServerFlow, use_flow_server
from preprocess.synthetic import known_motion_pairs
from tests.conftest import FAST_TVL1, ROOT, assert_same_content, python_cmd, run_cli

FAST = dict(kv.split("=") for kv in FAST_TVL1.split(","))


def _args(videos: Path, out: Path, server: str) -> list[str]:
    return ["run", "--videos", str(videos), "--out", str(out), "--views", "rgb,flow_tvl1", "--tvl1", FAST_TVL1,
            "--size", "48", "--flow-impl", "torch", "--flow-device", "cpu", "--flow-server", server,
            "--videos-per-shard", "1", "--jobs", "2", "--no-progress"]


def _run_log(root: Path) -> dict:
    logs = sorted((root / "logs").glob("run-*.json"))
    return json.loads(logs[-1].read_text())


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """The built-in sample, shorter: 3 classes x 2 videos of 24 frames (8 stored pairs each)."""
    from preprocess.synthetic import write_sample
    out = tmp_path_factory.mktemp("flow_server_videos") / "videos"
    write_sample(out, num_frames=24, per_class=2)
    return out


@pytest.fixture(scope="module")
def per_video_store(videos, tmp_path_factory) -> Path:
    """The store as each worker computes the flow of its own videos (--flow-server off)."""
    root = tmp_path_factory.mktemp("flow_server") / "off"
    assert run_cli(*_args(videos, root, "off")) == 0
    assert "flow_server" not in _run_log(root)
    return root


def test_a_store_made_through_the_server_equals_one_made_without(videos, per_video_store, tmp_path):
    root = tmp_path / "on"
    assert run_cli(*_args(videos, root, "on")) == 0
    assert_same_content(root, per_video_store)
    assert (root / "flow_tvl1" / "view.json").read_text() == (per_video_store / "flow_tvl1" / "view.json").read_text()
    stats = _run_log(root)["flow_server"]
    store = Store(root)
    assert stats["pairs"] == sum(len(store.frame_indices(v, "flow_tvl1")) for v in store.video_ids("flow_tvl1"))
    assert stats["device"] == "cpu" and stats["batches"] >= 1 and stats["failed_batches"] == 0
    assert stats["pairs_per_batch"] == stats["pairs"] / stats["batches"]


def test_pairs_of_several_videos_share_a_batch_and_get_their_own_flow():
    pairs = list(known_motion_pairs(40, 56).values())
    prev, nxt = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    alone = make_flow("tvl1", FAST, "torch", FlowSettings("cpu", 1))(prev, nxt)
    # a long gather time: the server waits until both connected workers have sent their pairs
    with FlowServer(FAST, FlowSettings("cpu", 8), gather_s=60.0) as server:
        clients = [ServerFlow(server.address, {}) for _ in range(3)]
        for c in clients:
            c._connection()
        clients[2]._conn.close()           # a worker that dies: the others do not wait for it
        time.sleep(1.0)                     # the server has seen the three connections and the death
        got: dict[int, np.ndarray] = {}
        parts = {0: slice(0, 1), 1: slice(1, 3)}    # worker 0: one pair of a video, worker 1: two of another
        threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, clients[i](prev[parts[i]], nxt[parts[i]])))
                   for i in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        stats = server.stop()
    np.testing.assert_array_equal(np.concatenate([got[0], got[1]]), alone)
    assert stats["batches"] == 1 and stats["pairs"] == 3 and stats["most_videos_in_a_batch"] == 2


def test_a_dead_server_is_one_line_for_the_supervisor_and_an_error_for_its_workers():
    with FlowServer(FAST, FlowSettings("cpu", 4)) as server:
        client = ServerFlow(server.address, {})
        pair = next(iter(known_motion_pairs(24, 32).values()))
        assert client(pair[0][None], pair[1][None]).shape == (1, 24, 32, 2)
        server.process.kill()
        with pytest.raises(FlowServerError):
            client(pair[0][None], pair[1][None])
        with pytest.raises(WorkerError, match="flow server process died of SIGKILL"):
            server.check(5.0)


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (the resource tracker of multiprocessing left out), oldest first."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    kids = []
    for child in out:
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            start = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[19])
        except OSError:
            continue
        if b"resource_tracker" not in cmd:
            kids.append((start, child))
    return [c for _, c in sorted(kids)]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(python_cmd() + args, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_the_servers_death_fails_the_run_with_one_line_then_a_rerun_finishes(videos, per_video_store,
                                                                          tmp_path):
    root = tmp_path / "store"
    proc = _start(_args(videos, root, "on"))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(_children(proc.pid)) < 2:   # the server, then a worker
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        os.kill(_children(proc.pid)[0], signal.SIGKILL)                   # the oldest child: the server
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert errors == [errors[0]] and "flow server" in errors[0] and "Traceback" not in err, err
    assert run_cli(*_args(videos, root, "on")) == 0
    assert_same_content(root, per_video_store)


def test_kill_9_of_the_run_takes_the_server_along_and_a_rerun_resumes(videos, per_video_store, tmp_path):
    root = tmp_path / "store"
    proc = _start(_args(videos, root, "on"))
    try:
        deadline = time.time() + 180
        while time.time() < deadline:   # some shards finished, another being written: kill the run alone
            if list((root / "flow_tvl1").glob("shard-*.h5")) and list((root / "flow_tvl1").glob(".shard-*.partial-*")):
                break
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.02)
        helpers = _children(proc.pid)
        assert len(helpers) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.time() + 30     # the server and the workers die with it (PR_SET_PDEATHSIG)
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in helpers):
            time.sleep(0.1)
        assert not [p for p in helpers if Path(f"/proc/{p}").exists()]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert run_cli("verify", root) == 1
    assert run_cli(*_args(videos, root, "on")) == 0
    assert run_cli("verify", root, "--deep") == 0
    assert_same_content(root, per_video_store)


def test_which_runs_use_the_server():
    assert use_flow_server("auto", ["rgb", "flow_tvl1"], "torch", "cpu", None) is False   # auto: CUDA only
    assert use_flow_server("on", ["rgb", "flow_tvl1"], "torch", "cpu", None) is True
    assert use_flow_server("auto", ["rgb", "flow_tvl1"], "opencv", "cuda", None) is False
    assert use_flow_server("off", ["flow_tvl1"], "torch", "cpu", None) is False
    with pytest.raises(UserError, match="needs --flow-impl torch"):
        use_flow_server("on", ["rgb", "flow_tvl1"], "opencv", "cpu", None)
    with pytest.raises(UserError, match="needs --flow-impl torch"):
        use_flow_server("on", ["rgb", "flow_farneback"], "torch", "cpu", None)
    with pytest.raises(UserError, match="local workers only"):
        use_flow_server("on", ["flow_tvl1"], "torch", "cpu", "tcp://localhost:8786")


def test_a_worker_dying_mid_video_fails_that_video_only_and_the_server_goes_on(videos, tmp_path):
    from tests.test_worker_pool import _only_that_video_failed, _wait_for_open_video
    root = tmp_path / "store"
    proc = subprocess.Popen(python_cmd() + _args(videos, root, "on")[:-3] + ["--jobs", "1", "--no-progress"],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        worker, video_file = _wait_for_open_video(proc.pid, videos, proc.poll)
        os.kill(worker, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, err                   # exit 3: a video failed; the others went through the server
    _only_that_video_failed(root, video_file, "its worker process died of SIGKILL (out of memory?)")
    assert "flow server on cpu" in err
