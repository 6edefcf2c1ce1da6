"""The local worker processes of `preprocess run --jobs N`, made to survive a worker's death.

A video that crashes its decoder (a segfault inside FFmpeg or OpenCV) or that is killed for memory takes
its worker process with it. Each worker tells the supervisor which video it starts; when a worker dies,
that video is recorded as failed with the reason, the worker is replaced, and its shard runs again without
that video (the dead worker's partial shard file is stale and discarded). Other shards go on undisturbed.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import traceback
from collections import deque
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Callable, Iterator

from .child_process import death_cause, die_with_parent
from .errors import UserError, WorkerError
from .flow.server import FlowServer, FlowServerError
from .native_logs import keep_only_error_logs
from .pipeline import ShardResult, ShardTask, StoreWriteError, process_shard


def _serve(conn: Connection) -> None:
    """A worker: take ShardTasks until told to stop, say which video starts, send back each result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    die_with_parent()
    keep_only_error_logs()  # mediapipe/TFLite info and warnings would fill the progress bar
    while (task := conn.recv()) is not None:
        try:
            result = process_shard(task, on_video=lambda video_id: conn.send(("video", video_id)))
        except BaseException as exc:
            known = isinstance(exc, (StoreWriteError, FlowServerError))
            conn.send(("error", (exc if known else None, traceback.format_exc())))
            return
        conn.send(("done", result))


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection
    task: ShardTask | None = None
    video: str | None = None
    started: int = 0  # videos of its task started so far (each finished when the next starts)


class _ShardProgress:
    """Finished videos per shard, each reported once to `report` (say, a progress bar's update), also when a
    shard runs again after a worker's death."""

    def __init__(self, report: Callable[[int], object] | None) -> None:
        self.report, self.done = report, {}

    def finished(self, shard: int, count: int) -> None:
        new = count - self.done.get(shard, 0)
        if new > 0 and self.report is not None:
            self.done[shard] = count
            self.report(new)


def _start_worker(ctx: mp.context.BaseContext) -> _Worker:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child,), daemon=True, name="preprocess-worker")
    process.start()
    child.close()
    return _Worker(process, parent)


def run_shards(tasks: list[ShardTask], n_jobs: int, on_videos: Callable[[int], object] | None = None,
               server: FlowServer | None = None) -> Iterator[ShardResult]:
    """Every task's result, in the order they finish, from `n_jobs` worker processes (spawned: a worker
    shares no threads or library state with this process). `on_videos(n)`: n more videos are finished.
    `server`: the flow server the workers use; its death ends the run with one line (WorkerError)."""
    ctx = mp.get_context("spawn")
    progress = _ShardProgress(on_videos)
    queue = deque(tasks)
    deaths_outside_videos: dict[int, int] = {}
    workers = [_start_worker(ctx) for _ in range(min(n_jobs, len(tasks)))]
    try:
        while True:
            for i, w in enumerate(workers):
                if w.task is None and queue:
                    if not w.process.is_alive():
                        w = workers[i] = _start_worker(ctx)
                    w.task, w.video, w.started = queue.popleft(), None, 0
                    w.conn.send(w.task)
            busy = [w for w in workers if w.task is not None]
            if not busy:
                return
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy] + ([server.sentinel] if server else []))
            if server is not None:
                server.check()
            for w in busy:
                try:
                    result = _drain(w, progress)
                except FlowServerError as exc:  # the worker saw it first: say how the server ended, if it did
                    if server is not None:
                        server.check(5.0)
                    raise WorkerError(f"shard {w.task.shard if w.task else '?'}: {exc}") from None
                if result is not None:
                    yield result
                elif w.task is not None and not w.process.is_alive():
                    queue.appendleft(_after_death(w, deaths_outside_videos))
                    workers[workers.index(w)] = _start_worker(ctx)
    finally:
        for w in workers:
            if w.process.is_alive() and w.task is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in workers:
            w.process.join(timeout=5 if w.task is None else 0)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join()
            w.conn.close()


def _drain(w: _Worker, progress: _ShardProgress) -> ShardResult | None:
    """Read what a worker has said; its result once it has finished its shard."""
    while w.task is not None:
        try:
            if not w.conn.poll():
                return None
            kind, payload = w.conn.recv()
        except (EOFError, OSError):  # it died; the caller sees that from the process
            return None
        if kind == "video":  # a video starts (payload: its id), or the last one is done (None)
            progress.finished(w.task.shard, w.started)
            w.video, w.started = payload, w.started + (payload is not None)
        elif kind == "done":
            progress.finished(w.task.shard, len(w.task.records))
            w.task = w.video = None
            return payload
        else:
            exc, trace = payload
            if isinstance(exc, StoreWriteError):  # a full disk or a read-only store: the user's to fix
                raise UserError(f"shard {w.task.shard}: {exc}")
            if isinstance(exc, FlowServerError):
                raise exc
            raise WorkerError(f"shard {w.task.shard} failed in a worker process:\n{trace}")
    return None


def _after_death(w: _Worker, deaths_outside_videos: dict[int, int]) -> ShardTask:
    """The dead worker's shard, to run again (see `after_death`)."""
    w.process.join()
    assert w.task is not None
    return after_death(w.task, w.video, f"its worker process {death_cause(w.process.exitcode)}",
                       deaths_outside_videos)


def after_death(task: ShardTask, video: str | None, cause: str, deaths_outside_videos: dict[int, int]) -> ShardTask:
    """The shard whose worker died (`cause`, e.g. 'its worker process died of SIGSEGV'), to run again: without
    `video`, now recorded as failed, or, when it died outside any video (out of memory while loading a model
    or writing the shard, say), as it was, once; a second such death raises WorkerError."""
    if video is None:
        deaths_outside_videos[task.shard] = deaths_outside_videos.get(task.shard, 0) + 1
        if deaths_outside_videos[task.shard] > 1:
            raise WorkerError(f"shard {task.shard}: {cause} twice, outside any video")
        print(f"warning: shard {task.shard}: {cause} outside any video; the shard runs again", file=sys.stderr)
        return task
    reason = f"{cause} while making this video"
    print(f"warning: video {video} of shard {task.shard}: {reason}; it is recorded as failed and the shard "
          f"runs again without it", file=sys.stderr)
    return replace(task, crashed={**task.crashed, video: reason})
