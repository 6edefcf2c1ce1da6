"""Scaling out: array jobs writing disjoint shards of one store, Slurm's variables, a Dask cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from preprocess.errors import UserError
from preprocess.runner import resolve_task
from tests.conftest import ROOT, assert_same_content, python_cmd, run_cli

VIEWS = "rgb,flow_dis"


def _args(videos: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--videos", str(videos), "--out", str(out), "--views", VIEWS, "--videos-per-shard", "1",
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def reference(sample_videos, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ref") / "store"
    assert run_cli(*_args(sample_videos, root)) == 0
    return root


def test_slurm_array_variables():
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert resolve_task(None, None, env) == (4, 8)
    assert resolve_task(None, None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}) == (0, 2)
    assert resolve_task(1, 3, env) == (1, 3)              # explicit options win
    assert resolve_task(None, None, {}) == (0, 1)
    with pytest.raises(UserError, match="--shard must be in"):
        resolve_task(3, 3, {})


def test_one_array_job_writes_only_its_shards(sample_videos, tmp_path):
    root = tmp_path / "store"
    assert run_cli(*_args(sample_videos, root, "--shard", "1", "--num-shards", "2")) == 0
    for view in VIEWS.split(","):
        assert sorted(p.name for p in (root / view).glob("shard-*.h5")) == [
            "shard-00001.h5", "shard-00003.h5", "shard-00005.h5"]
    assert run_cli("verify", root) == 1                    # the other half is still missing


def test_concurrent_array_jobs_make_one_store(sample_videos, reference, tmp_path):
    root = tmp_path / "store"
    procs = [subprocess.Popen(python_cmd() + _args(sample_videos, root), cwd=ROOT,
                              env={**__import__("os").environ, "SLURM_ARRAY_TASK_ID": str(i),
                                   "SLURM_ARRAY_TASK_COUNT": "3"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert run_cli("verify", root) == 0
    assert_same_content(root, reference)


def test_dask_cluster(sample_videos, reference, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        root = tmp_path / "store"
        assert run_cli(*_args(sample_videos, root, "--scheduler", cluster.scheduler_address)) == 0
    assert run_cli("verify", root) == 0
    assert_same_content(root, reference)


def test_unreachable_dask_scheduler_is_one_line(sample_videos, tmp_path, capsys):
    rc = run_cli(*_args(sample_videos, tmp_path / "s", "--scheduler", "tcp://127.0.0.1:9"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
