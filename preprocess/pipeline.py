"""One unit of batch work: decode every video of one shard once and write each missing view's shard.

Runs in a worker process (worker_pool.py on one machine, or a Dask worker); a video that fails goes into
every view's failures record with its reason and the shard goes on.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from data_specs import VideoRecord

from .decode import FramePair, VideoMeta, decode_pairs
from .errors import VideoError
from .store.layout import PARTIAL_RE, shard_path, view_dir
from .store.writer import ShardWriter
from .views import ViewOptions, build_view, library_versions

BATCH_FRAMES = 30  # frames decoded before the views compute them; a torch flow takes --flow-batch at once


@dataclass
class ShardTask:
    """What a worker needs to make one shard of some views."""

    root: str
    shard: int
    records: list[VideoRecord]
    views: list[str]
    options: ViewOptions
    decode_threads: int = 1
    cv_threads: int = 1
    crashed: dict[str, str] = field(default_factory=dict)  # video id -> why its worker died; not retried


@dataclass
class ShardResult:
    """What a worker reports back: counts, failures and where its time went."""

    shard: int
    videos: int = 0
    stored_frames: int = 0
    decoded_frames: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def remove_stale_partials(root: Path, view: str, shard: int) -> None:
    """Delete partial files of this shard left by dead processes on this host."""
    host = socket.gethostname()
    folder = view_dir(root, view)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        m = PARTIAL_RE.match(p.name)
        if not m or int(m.group(1)) != shard or m.group(2) != host:
            continue
        pid = int(m.group(3))
        if pid == os.getpid() or not _alive(pid):
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether a process of this host still runs (a killed worker may linger as a zombie: dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def process_shard(task: ShardTask, on_video: Callable[[str | None], None] | None = None) -> ShardResult:
    """Make the missing views of one shard; publish each view's shard file only when it is complete.
    `on_video(id)` is called as each video starts and `on_video(None)` after the last, so that a supervisor
    knows which video, if any, a worker that died was making."""
    cv2.setNumThreads(task.cv_threads)
    _set_torch_threads(task)
    started = time.perf_counter()
    root = Path(task.root)
    views = [v for v in task.views if not shard_path(root, v, task.shard).exists()]
    result = ShardResult(task.shard)
    if not views:
        return result
    computers = [build_view(v, task.options) for v in views]
    versions = library_versions()
    writers = []
    for comp in computers:
        remove_stale_partials(root, comp.name, task.shard)
        writers.append(ShardWriter(root, comp.name, task.shard, {**comp.attrs, "versions": versions},
                                   comp.compression, task.options.block_frames))
    decode_s = write_s = 0.0
    try:
        for record in task.records:
            if record.id in task.crashed:
                _record_failure(record, task.crashed[record.id], computers, writers, result)
                continue
            if on_video is not None:
                on_video(record.id)
            d, w = _process_video(record, task, computers, writers, result)
            decode_s += d
            write_s += w
        if on_video is not None:
            on_video(None)
        for writer in writers:
            t = time.perf_counter()
            writer.commit()
            write_s += time.perf_counter() - t
    except BaseException:
        for writer in writers:
            writer.discard()
        raise
    result.seconds = {"decode": decode_s, "write": write_s, "total": time.perf_counter() - started}
    for comp in computers:
        result.seconds[f"view:{comp.name}"] = comp.seconds
    return result


def _set_torch_threads(task: ShardTask) -> None:
    """A torch flow on the CPU runs as many threads as OpenCV does per worker (the workers fill the cores)."""
    if task.options.flow_impl != "opencv":
        import torch
        torch.set_num_threads(task.cv_threads)


def batch_frames(options: ViewOptions) -> int:
    """Frames gathered before the views compute: a batched flow gets whole --flow-batch batches."""
    return max(BATCH_FRAMES, options.flow_batch) if options.flow_impl != "opencv" else BATCH_FRAMES


class StoreWriteError(RuntimeError):
    """Writing the store failed (disk full, permissions): fatal for the task, unlike a bad video."""


def _store_io(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        raise StoreWriteError(f"writing the store failed: {exc}") from exc


def _process_video(record: VideoRecord, task: ShardTask, computers: list, writers: list[ShardWriter],
                   result: ShardResult) -> tuple[float, float]:
    """Decode one video once and feed every view; on failure, record it in every view."""
    meta = VideoMeta()
    with_next = any(c.needs_next for c in computers)
    with_source = any(c.needs_source for c in computers)
    for comp in computers:
        comp.reset()
    indices: list[int] = []
    times: list[float] = []
    decode_s = write_s = 0.0
    for writer in writers:
        writer.begin_video(record.id)
    try:
        frames = decode_pairs(record.path, task.options.stride, task.options.size, with_next, meta,
                              threads=task.decode_threads, with_source=with_source)
        batch: list[FramePair] = []
        batch_size = batch_frames(task.options)
        while True:
            t = time.perf_counter()
            pair = next(frames, None)
            decode_s += time.perf_counter() - t
            if pair is not None:
                batch.append(pair)
            if batch and (pair is None or len(batch) == batch_size):
                indices.extend(p.index for p in batch)
                times.extend(p.time for p in batch)
                for comp, writer in zip(computers, writers):
                    out = comp.compute(batch)
                    t = time.perf_counter()
                    _store_io(writer.append, out)
                    write_s += time.perf_counter() - t
                batch = []
            if pair is None:
                break
        attrs: dict[str, Any] = {
            "source_path": record.path, "fps": meta.fps, "original_size": np.asarray(meta.original_size),
            "rotation": meta.rotation, "source_frames": meta.decoded_frames, "codec": meta.codec,
            "label": record.label,
        }
        t = time.perf_counter()
        for writer in writers:
            _store_io(writer.end_video, np.asarray(indices), np.asarray(times), attrs)
        write_s += time.perf_counter() - t
        result.videos += 1
        result.stored_frames += len(indices)
        result.decoded_frames += meta.decoded_frames
    except StoreWriteError:
        raise
    except Exception as exc:  # a bad video must not stop the batch; the reason is recorded
        reason = str(exc) if isinstance(exc, VideoError) else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        for writer in writers:
            writer.abort_video()
        _record_failure(record, reason, computers, writers, result)
    return decode_s, write_s


def _record_failure(record: VideoRecord, reason: str, computers: list, writers: list[ShardWriter],
                    result: ShardResult) -> None:
    """Put a failed video, with its reason, into every view's failures record."""
    for writer in writers:
        writer.add_failure(record.id, record.path, reason)
    result.failures.extend({"view": comp.name, "id": record.id, "path": record.path, "reason": reason}
                           for comp in computers)
