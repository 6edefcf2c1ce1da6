"""kill -9 in the middle of a run, run again: the store verifies and equals an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import FAST_TVL1, ROOT, assert_same_content, python_cmd, run_cli

VIEWS = "rgb,flow_tvl1"


def _args(videos: Path, out: Path) -> list[str]:
    return ["run", "--videos", str(videos), "--out", str(out), "--views", VIEWS, "--tvl1", FAST_TVL1,
            "--videos-per-shard", "1", "--jobs", "2", "--no-progress"]


def test_kill_9_then_rerun_equals_uninterrupted(sample_videos, tmp_path):
    reference = tmp_path / "reference"
    assert run_cli(*_args(sample_videos, reference)) == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen(python_cmd() + _args(sample_videos, killed), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        # wait until some shards are finished and another one is being written, then kill -9
        while time.time() < deadline:
            done = list((killed / "flow_tvl1").glob("shard-*.h5"))
            partial = list((killed / "flow_tvl1").glob(".shard-*.partial-*"))
            if len(done) >= 2 and partial:
                break
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished_before = {p: p.stat().st_mtime_ns for p in killed.glob("*/shard-*.h5")}
    assert 2 <= len(finished_before) < 12
    assert run_cli("verify", killed) == 1                  # incomplete, and says so

    assert run_cli(*_args(sample_videos, killed)) == 0
    assert {p: p.stat().st_mtime_ns for p in finished_before} == finished_before   # not recomputed
    assert not list(killed.glob("*/.shard-*"))             # stale partial files removed
    assert run_cli("verify", killed, "--deep") == 0
    assert_same_content(killed, reference)
