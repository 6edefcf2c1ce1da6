"""Shards on a Dask cluster (`preprocess run --scheduler`), isolated from crashing videos as the local
workers are: each task names the video it starts in a Dask Variable; when Dask gives up on a shard whose
workers kept dying (KilledWorker, after the scheduler's allowed-failures), that video is recorded as failed
and the shard is submitted again without it. Dask schedules; this only resubmits.
"""

from __future__ import annotations

import uuid
from typing import Callable, Iterator

from .errors import UserError
from .pipeline import ShardResult, ShardTask, StoreWriteError, process_shard
from .worker_pool import after_death

LOST_WORKER = "its Dask worker died again and again (KilledWorker)"


def _shard_on_worker(task: ShardTask, variable: str) -> ShardResult:
    """Runs on a Dask worker: make the shard, keeping the in-flight video's id in the Variable `variable`."""
    from distributed import Variable
    inflight = Variable(variable)
    return process_shard(task, on_video=inflight.set)


def run_shards_on_dask(client, tasks: list[ShardTask],
                       on_videos: Callable[[int], object] | None = None) -> Iterator[ShardResult]:
    """Every task's result, in the order they finish on the cluster of `client`; `on_videos(n)` per shard."""
    from distributed import KilledWorker, Variable, as_completed

    run = uuid.uuid4().hex[:12]
    deaths_outside_videos: dict[int, int] = {}
    pending: dict = {}
    attempts: dict[int, int] = {}

    def submit(task: ShardTask):
        attempts[task.shard] = attempts.get(task.shard, 0) + 1
        name = f"preprocess-{run}-shard{task.shard}"
        future = client.submit(_shard_on_worker, task, name, pure=False, key=f"{name}-try{attempts[task.shard]}")
        pending[future] = (task, name)
        return future

    futures = as_completed([submit(t) for t in tasks])
    for future in futures:
        task, name = pending.pop(future)
        if future.status == "finished":
            if on_videos is not None:
                on_videos(len(task.records))
            yield future.result()
            Variable(name, client=client).delete()
            continue
        error = future.exception()
        if isinstance(error, StoreWriteError):  # a full disk or a read-only store: the user's to fix
            raise UserError(f"shard {task.shard}: {error}")
        if not isinstance(error, KilledWorker):
            future.result()  # a bug: raised here with its traceback, as in-process
        try:
            video = Variable(name, client=client).get(timeout=5)
        except TimeoutError:
            video = None  # it died before its first video
        futures.add(submit(after_death(task, video, LOST_WORKER, deaths_outside_videos)))
